"""The ranking model: LambdaRank relevance with position-bias correction, and revenue-aware re-ranking."""
