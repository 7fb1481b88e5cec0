"""Channel adapters: each turns its platform's wire format into kefu's message types."""
