"""The reference CDC pipeline beside the engine: a real Debezium publishing to RabbitMQ."""
