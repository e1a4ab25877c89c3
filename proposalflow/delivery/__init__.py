"""Delivery: an approved proposal becomes a document the client can open and an email to send.

- `service`            — the steps (plan → folder → document → share → email → send → finish), `deliver`
- `records`            — `deliveries` / `delivery_steps`: idempotency keys per (proposal, version, target, step)
- `targets`            — the one interface both targets implement, and the `DeliveryJob`
- `workspace`          — Google Drive folder + Google Doc + Gmail draft (google-api-python-client)
- `google_credentials` — service account (domain-wide delegation) or OAuth consent stored encrypted
- `local`              — .docx/.html exports and an .eml outbox (SMTP with --send)
- `render`, `mail`     — the proposal as HTML/.docx; the email from its template
"""
