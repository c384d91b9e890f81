"""Inference: from inputs to verdicts. The `ai-image-detection` pipeline (`pipeline`), its preprocessing threads
(`batching`), the one scoring loop (`scoring`), what `aigi detect` reads (`inputs`) and writes (`rows`), the command
itself (`detect`), sharding over the processes of `accelerate launch` (`distributed`) and the speed benchmark
(`speed`). It reads `aigi.data`, `aigi.image_io` and `aigi.registry`, never `aigi.evaluation`."""
