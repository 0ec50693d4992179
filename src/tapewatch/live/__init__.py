"""``tapewatch live`` foundations: venue endpoints, one websocket connection state machine, the
Binance depth sync and the collector that flushes parsed rows to the store."""
