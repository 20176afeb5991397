"""Chart builders and the report sections made of them, one module per topic.

Builders take tidy frames with NaN/inf rows already dropped; each `*_section` function turns a
sweep's results into a `Section` (heading, notes, charts with captions).
"""
