"""The protocols Morpheus serves, one package each (OpenAI HTTP, realtime WebSocket + WebRTC,
ElevenLabs, Wyoming), thin translations onto the same orchestrator; what several share (writes
with a deadline, whole-response spooling) lives at this level."""
