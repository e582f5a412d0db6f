-- Wake the waiting workers once the extension is committed, so they start at once.
SELECT conveyor._wake();
