"""``tapewatch live`` foundations: venue endpoints, one websocket connection state machine, the
Binance depth sync, open interest REST polling and the collector that flushes parsed rows to the
store."""
