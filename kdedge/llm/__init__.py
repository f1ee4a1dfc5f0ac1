"""Response distillation: a strong teacher's grounded answers taught to a small causal LM.

``collect`` asks the teacher (any OpenAI-compatible server) and caches its answers,
``gate`` keeps only answers the catalog supports, ``mix`` builds the weighted training
set, ``sft`` trains a LoRA adapter and merges it, ``evaluate`` scores answers for catalog
hallucinations, refusals and agreement with the teacher. The student ships as GGUF through
``kdedge export``.
"""
