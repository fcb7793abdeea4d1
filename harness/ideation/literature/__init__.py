"""Literature search for the novelty check: online sources (Semantic Scholar, OpenAlex), the
offline index shipped with the project, and the chain that tries them in turn with a disk cache."""
