"""The coding agent: the aider session (session.py), the model choice (models.py), the
scripted and replayed stand-ins for a model (scripted_llm.py, replay.py), the edits it must
refuse (edit_guard.py), the prompts it is sent (prompts.py) and its chat log (chatlog.py).

Importing this package imports nothing heavy: only session.py loads aider and litellm, so
readers of chat.jsonl (the store, the report) start fast.
"""
