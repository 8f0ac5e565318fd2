// A <canvas> sized to its CSS box at the screen's pixel density, cleared, ready to draw on.

// Returns the 2D context, the size in device pixels, the pixel ratio and the computed style.
export function fitCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(1, Math.round(canvas.clientWidth * dpr));
  const h = Math.max(1, Math.round(canvas.clientHeight * dpr));
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, w, h);
  return { g, w, h, dpr, style: getComputedStyle(canvas) };
}
