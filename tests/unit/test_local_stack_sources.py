"""Sources discovered from a Chalice app's registrations (local_stack.sources), and the fault hook."""

from __future__ import annotations

import pytest
from chalice import Chalice

from local_stack.invocation import FaultHook, InjectedFault, Invoker
from local_stack.sources import BusSource, QueueSource, StreamSource, discover

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/t/stream/x"


def build_app() -> Chalice:
    app = Chalice(app_name="sample")

    @app.on_dynamodb_record(stream_arn=ARN, batch_size=7, starting_position="LATEST",
                            maximum_batching_window_in_seconds=2)
    def on_stream(event):
        return None

    @app.on_sqs_message(queue="q1", batch_size=5)
    def by_name(event):
        return None

    @app.on_sqs_message(queue_arn="arn:aws:sqs:us-east-1:123456789012:q2")
    def by_arn(event):
        return None

    @app.on_cw_event({"source": ["x"]}, name="on_bus")
    def on_bus(event):
        return None

    @app.schedule("rate(1 minute)")
    def every_minute(event):
        return None

    return app


def test_every_registration_becomes_a_source_with_its_decorator_settings():
    discovery = discover(build_app().event_sources)
    assert discovery.sources == (
        StreamSource("on_stream", "app.on_stream", ARN, 7, "LATEST", 2.0),
        QueueSource("by_name", "app.by_name", "q1", 5, 0.0),
        QueueSource("by_arn", "app.by_arn", "q2", 1, 0.0),
        BusSource("on_bus", "app.on_bus", {"source": ["x"]}),
    )


def test_what_the_local_stack_cannot_run_is_named():
    assert discover(build_app().event_sources).unsupported == ("every_minute (ScheduledEventConfig)",)


def test_the_fault_hook_fails_each_named_handler_once():
    hook = FaultHook.from_names(" replicate_users , fanout_users,")
    with pytest.raises(InjectedFault):
        hook.check("replicate_users")
    hook.check("replicate_users")  # second delivery goes through
    hook.check("process_orders")  # never named
    with pytest.raises(InjectedFault):
        hook.check("fanout_users")


def test_an_invoker_calls_the_handler_with_event_and_context_and_reads_the_answer():
    seen = []

    def handler(event, context):
        seen.append((event, context.function_name, context.get_remaining_time_in_millis() > 0))
        return {"batchItemFailures": [{"itemIdentifier": "2"}]}

    delivery = Invoker("fn", handler, report_failures=True).invoke({"Records": [1, 2]}, ["1", "2"], "test")
    assert seen == [({"Records": [1, 2]}, "fn", True)]
    assert delivery.outcome.failed_ids == ("2",)


def test_an_invoker_turns_an_injected_fault_into_a_failed_delivery_without_calling_the_handler():
    calls = []
    invoker = Invoker("fn", lambda event, context: calls.append(event), faults=FaultHook({"fn"}))
    assert invoker.invoke({}, ["1"], "test").outcome.describe().startswith("raised InjectedFault")
    assert calls == []
    assert invoker.invoke({}, ["1"], "test").outcome.describe() == "ok"
    assert invoker.invocations == 2


def test_an_invocation_longer_than_the_functions_timeout_fails_as_on_lambda():
    ticks = iter([0.0, 3.5])
    invoker = Invoker("fn", lambda event, context: None, timeout_ms=3000, clock=lambda: next(ticks),
                      function_name="stream-pipeline-dev-fn")
    delivery = invoker.invoke({}, ["1"], "test")
    assert delivery.outcome.describe() == "Task timed out after 3.00 seconds"
