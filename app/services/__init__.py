"""Domain operations: functions over a session that add and flush but never commit."""
