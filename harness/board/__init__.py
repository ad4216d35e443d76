"""The leaderboard: a model of stats, rows and tables, collected from run files, rendered as Markdown, HTML and plots."""
