"""The realtime face: one event session (signaling/protocol.py) over a WebSocket with binary
PCM, or over a WebRTC data channel with a paced Opus track and barge-in."""
