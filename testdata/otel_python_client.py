"""Sends logs to miniloki with the real OpenTelemetry Python SDK.

Configured as in the OpenTelemetry Python logs example
(opentelemetry-python docs/examples/logs/example.py): a LoggerProvider with a
Resource, a BatchLogRecordProcessor around an OTLPLogExporter, and a
LoggingHandler on the root logger of the standard `logging` module.

Usage:
    python otel_python_client.py http http://127.0.0.1:3100/otlp/v1/logs RUN
    python otel_python_client.py grpc http://127.0.0.1:4317 RUN

RUN is a tag put in `service.instance.id` and in every line, so that the
records of one run can be found with LogQL. Documented in docs/otlp.md.
"""

import logging
import sys

from opentelemetry import trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider


def main() -> int:
    if len(sys.argv) != 4 or sys.argv[1] not in ("http", "grpc"):
        print(__doc__, file=sys.stderr)
        return 2
    protocol, endpoint, run = sys.argv[1:]

    if protocol == "http":
        from opentelemetry.exporter.otlp.proto.http._log_exporter import (
            OTLPLogExporter,
        )

        exporter = OTLPLogExporter(endpoint=endpoint)
    else:
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
            OTLPLogExporter,
        )

        exporter = OTLPLogExporter(endpoint=endpoint, insecure=True)

    trace.set_tracer_provider(TracerProvider())
    tracer = trace.get_tracer(__name__)

    logger_provider = LoggerProvider(
        resource=Resource.create(
            {
                "service.name": "shoppingcart",
                "service.instance.id": f"instance-{run}",
                "deployment.environment": "dev",
            }
        ),
    )
    set_logger_provider(logger_provider)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(exporter))
    handler = LoggingHandler(level=logging.NOTSET, logger_provider=logger_provider)
    logging.getLogger().addHandler(handler)
    logging.getLogger().setLevel(logging.DEBUG)

    # Log directly.
    logging.info("Jackdaws love my big sphinx of quartz. run=%s", run)

    # Namespaced loggers become the instrumentation scope.
    logger1 = logging.getLogger("myapp.area1")
    logger2 = logging.getLogger("myapp.area2")
    logger1.debug("Quick zephyrs blow, vexing daft Jim. run=%s", run)
    logger1.info("How quickly daft jumping zebras vex. run=%s", run)
    logger2.warning("Jail zesty vixen who grabbed pay from quack. run=%s", run)
    logger2.error(
        "The five boxing wizards jump quickly. run=%s",
        run,
        extra={"order.id": 1234, "customer": "alice"},
    )

    # Inside a span: the record carries its trace and span ids.
    with tracer.start_as_current_span("checkout"):
        logging.getLogger("myapp.area1").error(
            "Hyderabad, we've got a problem! run=%s", run
        )

    logger_provider.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
