"""kefu's core: message types, router, conversation state, rules and timers, storage."""
