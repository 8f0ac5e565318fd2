"""What the in-process ONNX engines that stream inside a sentence share (Piper, Kokoro): cutting
an exported graph where its decoder begins (`graphcut`), the schedule of decoder windows a
listener's lead affords (`schedule`), and a graph's pair of onnxruntime sessions with the
decoder's measured pace (`sessions`). The engines say where to cut and how wide their windows
are; the mechanics live here once."""
