"""One test per fault: each checks that nothing done is lost and that the cause is recorded."""
