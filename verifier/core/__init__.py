"""The nouns every area shares, below all of them.

Cases and their state changes, the policy in force and its sampler, the outbox, the audit
trail, the text checks (the card-number pattern among them) and the wording of an order.
"""
