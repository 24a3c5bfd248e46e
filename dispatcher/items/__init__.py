"""Items and the people behind them: the workflow (submit, approve, revise, withdraw),
agencies and tokens, the site search index, and the read models the API returns."""
