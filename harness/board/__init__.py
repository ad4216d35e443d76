"""The leaderboard, built from the run JSON files in floors whose imports run one way:

* ``stats``: numbers over seeds and the paired comparisons against the references (no run files);
* ``model``: the Board of groups, tables, rows and the policy table, and the text helpers the
  renderers share (no I/O);
* ``collect``: run files → Board;
* ``policy``, ``markdown``, ``html``, ``plots``, ``terminal``: the renderers over the model;
* ``build``: ``build(root)``, the one entry point, writes LEADERBOARD.md, leaderboard.html and plots/.
"""
