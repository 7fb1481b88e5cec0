"""The human side of kefu: agents, the queue, the console, offline messages, transcripts."""
