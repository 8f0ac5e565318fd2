"""The ElevenLabs face: its HTTP text-to-speech routes (with timestamps), voices and models, and
both WebSockets (stream-input, multi-stream-input), in ElevenLabs' own shapes."""
