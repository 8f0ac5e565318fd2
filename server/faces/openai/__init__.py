"""The HTTP face: OpenAI's /v1/audio/speech (streamed or whole), its voices and models, and the
legacy Orpheus-FastAPI /speak."""
