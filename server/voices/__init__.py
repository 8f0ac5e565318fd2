"""The voice library: stored clones and presets, one voice id on every face (docs/voices.md)."""
