"""Trading actions on the local book: the backup desk (journaled orders, square-off, kill switch),
the online desk (the same actions sent to main), the policy that decides what a dealer may do in
each mode, the journal writes and the held entries a supervisor decides.

Apart from the rest of ``sync``, which keeps the local book in step with main (BOD, mirror,
runtime, replay, reconcile, status).
"""
