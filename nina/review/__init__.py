"""`nina diff`: what a change to the repository or a stack file does to a stack, as a reviewer needs to see it
(README "Reviewing a change"). Two offline evaluations (evaluations.py), compared resource by resource
(changes.py), file by file inside user-data and deliveries (files.py), judged for danger and rendered as text,
markdown for a pull-request comment, or JSON (report.py)."""
