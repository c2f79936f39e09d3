//! The HTTP and gRPC surface: Loki's API paths, parameters, JSON shapes,
//! status codes and error texts. Handlers parse requests, call ingestion or
//! LogQL, and encode results; they hold no storage or query logic.
