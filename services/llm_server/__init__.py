"""llama.cpp's OpenAI-compatible server as a service of the local stack."""
