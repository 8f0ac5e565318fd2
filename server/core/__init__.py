"""The stream core: admission, the orchestrator and its streams, recovery, the audio chain, rate
control, the engine gate, word timings and the vocabulary every face reads."""
