"""The leaderboard, built from the run JSON files in floors whose imports run one way:

* ``stats``: numbers over seeds and the paired comparisons against the references (no run files);
* ``model``: the Board of groups, tables, rows and the policy table, and the text helpers the
  renderers share (no I/O);
* ``collect``: run files → Board;
* ``policy``, ``plots``, ``terminal``: renderers over the model (the policy table, the PNGs, the terminal table);
* ``front``: the front page's tracks, cells and generated sentences (reads ``board.yaml``);
* ``pages``: every page as Markdown (front page, track pages, router cards, checks.md);
* ``site``: those pages as HTML (markdown-it, raw HTML off), and the static site folder;
* ``build``: ``build(root)``, the one entry point, writes the pages, their HTML and plots/.
"""
