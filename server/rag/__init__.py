"""Retrieval for chat: documents → PII redaction → semantic chunks → embeddings → a FAISS index with
metadata filters. ``docs/design/rag.md`` has the measurements behind each choice."""
