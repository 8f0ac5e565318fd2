"""The Wyoming face: a Wyoming TTS server (Home Assistant's protocol) inside the process."""
