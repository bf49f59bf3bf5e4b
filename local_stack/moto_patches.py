"""The local stack's moto patch layer: where moto differs from AWS in a way a developer would notice.

Applied by the emulator (`Emulator.start`) before it serves, undone when it stops. Each patch below names
the moto function it replaces, the AWS behaviour it restores and what upstream moto does instead. moto is
pinned (`requirements-dev.txt`); every replaced function is also pinned here by a hash of its
source, as is every moto function a patch relies on unchanged; `apply()` refuses to patch anything, with one
message naming each function that changed, when a moto upgrade changed one: re-read it, then update or drop
the patch (upstream may have fixed it).
One test per patch (`tests/functional/test_local_stack_moto_patches.py`) runs it on moto as shipped and patched.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("local_stack.emulator")

MOTO_VERSION = "5.2.5"  # the version the hashes below were taken from


class MotoPatchError(RuntimeError):
    """moto changed under the patch layer: the local stack would silently drift from AWS."""


@dataclass(frozen=True)
class Replacement:
    """`owner.attribute` (a function or property of a moto class) replaced by `build(original)`; with no `build`,
    a moto function the patch relies on as it is (pinned all the same)."""

    module: str
    owner: str  # class name in `module`
    attribute: str
    source_sha256: str  # of moto's original, so an upgrade that changes it is noticed
    build: Callable[[Any], Any] | None = None


@dataclass(frozen=True)
class Patch:
    """One difference from AWS, fixed."""

    name: str
    aws: str  # what AWS does
    upstream: str  # what moto does instead
    replacements: tuple[Replacement, ...]


class _View:
    """A moto model with some attributes replaced, for one call of one of its methods; everything else is the
    model's own. (Not a copy: moto tracks every model instance it creates, for good.)"""

    def __init__(self, model: Any, **replaced: Any):
        self.__dict__.update(replaced)
        self._model = model

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


# --- SQS: a send costs the same whatever the queue's depth -------------------------------------------


class QueueAttributes(Mapping[str, Any]):
    """`Queue.attributes` read one attribute at a time, each computed when asked for, as moto computes it.

    moto's `send_message` reads `queue.attributes.get("ContentBasedDeduplication")` on every send; upstream
    builds every attribute for that, including three counts that scan every message in the queue.
    """

    __slots__ = ("_queue",)

    def __init__(self, queue: Any):
        self._queue = queue

    def _names(self) -> list[str]:
        queue = self._queue
        names = list(queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:
            names += queue.KMS_ATTRIBUTES
        return names

    def __getitem__(self, name: str) -> Any:
        from moto.core.utils import camelcase_to_underscores

        if name not in self._names():
            raise KeyError(name)
        value = getattr(self._queue, camelcase_to_underscores(name))
        if name == "RedrivePolicy" and value:
            value = json.dumps(value)
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())


def _queue_attributes(original: property) -> property:
    return property(QueueAttributes)


SQS_SEND_COST = Patch(
    name="sqs-send-cost",
    aws="SendMessage takes the same time on an empty queue and on one holding a million messages.",
    upstream="SQSBackend.send_message reads queue.attributes, which scans every message three times (visible, "
             "in flight, delayed) to count them: a queue nobody drains makes each send slower than the last.",
    replacements=(Replacement("moto.sqs.models", "Queue", "attributes",
                              "40cb990b121628d535cecbcd0e0d333984024633b70a097489ae8611e1a59338", _queue_attributes),),
)


# --- EventBridge: what an SQS target receives, and what a failing target does ------------------------

_delivery = threading.local()  # the Detail text of the PutEvents entry being delivered on this thread


def _put_events(original: Callable[..., list[dict[str, Any]]]) -> Callable[..., list[dict[str, Any]]]:
    def put_events(self: Any, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """moto's put_events one entry at a time, with that entry's Detail text at hand for its targets."""
        if len(events) > 10:
            return original(self, events)  # moto's own validation error
        entries: list[dict[str, Any]] = []
        for event in events:
            outer = getattr(_delivery, "detail", None)  # a bus target re-enters put_events
            detail = event.get("Detail")
            _delivery.detail = detail if isinstance(detail, str) else None
            try:
                entries.extend(original(self, [event]))
            finally:
                _delivery.detail = outer
        return entries

    return put_events


COMPACT = (",", ":")


def message_body(event: dict[str, Any]) -> str:
    """The SQS message an event becomes: `detail` is the published Detail text itself, every digit kept,
    unless a target's InputTransformer changed it; `time` as EventBridge writes it; compact JSON, as AWS sends."""
    from moto.core.utils import iso_8601_datetime_without_milliseconds, utcfromtimestamp

    event = dict(event)
    if "time" in event and not isinstance(event["time"], str):
        event["time"] = iso_8601_datetime_without_milliseconds(utcfromtimestamp(float(event["time"])))  # type: ignore[arg-type]
    raw = getattr(_delivery, "detail", None)
    if raw is None or event.get("detail") != json.loads(raw):
        return json.dumps(event, separators=COMPACT)
    marker = f"exact-detail-{uuid.uuid4().hex}"
    return json.dumps({**event, "detail": marker}, separators=COMPACT).replace(json.dumps(marker), raw, 1)


def _send_to_sqs_queue(original: Callable[..., None]) -> Callable[..., None]:
    def send_to_sqs_queue(self: Any, resource_id: str, event: dict[str, Any], group_id: str | None = None) -> None:
        """moto's delivery to an SQS target, with the body from `message_body`."""
        from moto.sqs import sqs_backends

        backend = sqs_backends[self.account_id][self.region_name]
        if group_id and backend.get_queue_attributes(
                queue_name=resource_id, attribute_names=["ContentBasedDeduplication"]
        )["ContentBasedDeduplication"] == "false":
            raise TargetFailed("SDK_CLIENT_ERROR", "a FIFO queue target needs content-based deduplication")
        backend.send_message(queue_name=resource_id, message_body=message_body(event), group_id=group_id)

    return send_to_sqs_queue


EVENTS_EXACT_DETAIL = Patch(
    name="events-exact-detail",
    aws="An SQS target receives the event's detail as it was published: a 20-digit integer or a 38-digit "
        "decimal keeps every digit.",
    upstream="EventsBackend.put_events parses Detail with json.loads (decimals become floats) and "
             "Rule._send_to_sqs_queue writes it back with json.dumps: 12345678901234567890.5 arrives as "
             "1.2345678901234567e+19. (It also skips a FIFO queue target without content-based deduplication with "
             "a Python warning; here that target fails, as on AWS, and is counted.)",
    replacements=(
        Replacement("moto.events.models", "EventsBackend", "put_events",
                    "c56f6ac1f932c70d3dbe82d2e85d4a6de2bdc2368dda47d755d3548481e46783", _put_events),
        Replacement("moto.events.models", "Rule", "_send_to_sqs_queue",
                    "026c873dd0091781a534906b49cab5aa18ae4664d6e9382da77c8d8b7649d2be", _send_to_sqs_queue),
    ),
)


EVENT_FIELDS = ("version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail")


def _template_parse(original: Callable[..., dict[str, Any]]) -> staticmethod:
    def parse(input_template: str | None, input_paths_map: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
        """A target without an InputTransformer gets the whole event (a copy); moto's parser does the rest."""
        if input_template or input_paths_map:
            return original(input_template, input_paths_map, event)
        return json.loads(json.dumps({name: event[name] for name in EVENT_FIELDS if name in event}))

    return staticmethod(parse)


EVENTS_DEFAULT_INPUT = Patch(
    name="events-default-input",
    aws="A target without an InputTransformer receives the whole event: version, id, detail-type, source, account, "
        "time, region, resources, detail; delivering it costs next to nothing.",
    upstream="EventTemplateParser.parse fills a text template through jsonpath_ng, which builds a new parser (ply "
             "lex and yacc tables) for each of 8 paths, for every event and target: ~5-20 ms of CPU per event, 40 % "
             "of the local stack's CPU while users are written. It also leaves `account` out.",
    replacements=(Replacement("moto.events.utils", "EventTemplateParser", "parse",
                              "40a5a46a321811bb2643aaabb7b45c37f75644fcce9cb95524e729a43f0d97d7", _template_parse),),
)


class TargetFailed(Exception):
    """A target could not take an event (EventBridge's ERROR_CODE, and why)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


_failures: Counter[tuple[str, str]] = Counter()  # per (rule ARN, target Id): for the log's cadence
_failures_lock = threading.Lock()


def _error_code(error: BaseException) -> str:
    if isinstance(error, TargetFailed):
        return error.code
    code = str(getattr(error, "code", "") or type(error).__name__)
    return "RESOURCE_NOT_FOUND" if "NonExistent" in code or "NotFound" in code else "SDK_CLIENT_ERROR"


def _target_failed(rule: Any, target: dict[str, Any], event: dict[str, Any], error: BaseException) -> None:
    """What EventBridge does when a target fails for good: count FailedInvocations for the rule, and send the
    event to the target's dead-letter queue if it has one (else it is dropped)."""
    from moto.cloudwatch import cloudwatch_backends
    from moto.sqs import sqs_backends

    code, reason = _error_code(error), str(getattr(error, "message", "") or error).rstrip(".")
    cloudwatch_backends[rule.account_id][rule.region_name].put_metric_data("AWS/Events", [
        {"MetricName": "FailedInvocations", "Value": 1.0, "Unit": "Count",
         "Dimensions": [{"Name": "RuleName", "Value": rule.name}]}])
    with _failures_lock:
        _failures[(rule.arn, target["Id"])] += 1
        count = _failures[(rule.arn, target["Id"])]
    dead_letter_arn = (target.get("DeadLetterConfig") or {}).get("Arn")
    delivered = {key: value for key, value in event.items() if key != "ingestion-time"}  # moto's own field
    outcome = "dropped"
    if dead_letter_arn:
        queue = dead_letter_arn.rsplit(":", 1)[-1]
        try:
            sqs_backends[rule.account_id][rule.region_name].send_message(
                queue_name=queue, message_body=message_body(delivered), message_attributes={
                    name: {"DataType": "String", "StringValue": value} for name, value in (
                        ("ERROR_CODE", code), ("ERROR_MESSAGE", reason[:256]), ("RULE_ARN", rule.arn),
                        ("TARGET_ARN", target["Arn"]), ("RETRY_ATTEMPTS", "0"))})
            outcome = f"sent to its dead-letter queue {queue}"
        except Exception as dead:  # its DLQ failing too is logged; the PutEvents call still succeeds
            outcome = f"dropped: its dead-letter queue {queue} failed too ({type(dead).__name__})"
    if count == 1 or count % 100 == 0:  # a broken target fails every event: the first and every 100th
        logger.warning("EventBridge rule %s target %s (%s) failed: %s: %s; event %s %s (%d failed so far, "
                       "counted as AWS/Events FailedInvocations)", rule.name, target["Id"], target["Arn"], code,
                       reason, event.get("id"), outcome, count)


def _send_to_targets(original: Callable[..., None]) -> Callable[..., None]:
    def send_to_targets(self: Any, original_event: dict[str, Any], transform_input: bool = True) -> None:
        """moto's delivery, one target at a time: a failing target fails alone, as on AWS."""
        for target in list(self.targets):
            try:
                original(_View(self, targets=[target]), original_event, transform_input)
            except Exception as error:  # any target fault stays that target's: PutEvents has succeeded
                _target_failed(self, target, original_event, error)

    return send_to_targets


EVENTS_TARGET_FAILURES = Patch(
    name="events-target-failures",
    aws="PutEvents succeeds once the bus accepts the entries; a target that cannot take an event (its queue was "
        "deleted) fails on its own: other targets still receive it, the rule's AWS/Events FailedInvocations "
        "metric counts it, and it goes to the target's dead-letter queue if one is configured.",
    upstream="Rule.send_to_targets delivers inline and lets the error escape: one rule whose target queue does "
             "not exist makes every PutEvents on the bus fail (QueueDoesNotExist), for every subscriber.",
    replacements=(Replacement("moto.events.models", "Rule", "send_to_targets",
                              "472e002e2dab8a599554a7d6c7ea0910625a5b39c7699b9ca4404255efcfc172",
                              _send_to_targets),),
)


# --- DynamoDB: a Query reads the items its key condition selects, not the table -----------------------------

# Each selects a run of a partition in key order (moto gets the symbols from a KeyConditionExpression).
KEY_RANGE_OPERATORS = frozenset({"EQ", "=", "LE", "<=", "LT", "<", "GE", ">=", "GT", ">", "BEGINS_WITH", "BETWEEN"})


def partition_items(table: Any, hash_key: Any) -> list[Any]:
    """The items of one partition of a moto table, in the order `Table.all_items` then `Table.query` put them
    (moto compares `DynamoType.cast_value`s; each is computed once here, and compared in C)."""
    found = table.items.get(hash_key)  # .get: `items` is a defaultdict
    if found is None:
        return []
    if not table.range_key_attr:
        return [found]
    return [item for _, item in sorted(((item.range_key.cast_value, item) for item in found.values()),
                                       key=lambda pair: pair[0])]


def key_range_items(items: list[Any], comparison: str, bounds: list[Any]) -> list[Any]:
    """Of a partition's `items` (in key order), the run whose sort key meets the key condition, with the item
    just outside it on each side: moto looks one item past the last match to decide LastEvaluatedKey, so the
    answer (Items, Count, ScannedCount, LastEvaluatedKey) is the one it gives reading the whole partition."""
    from moto.dynamodb.comparisons import get_comparison_func

    compare, values = get_comparison_func(comparison), [bound.cast_value for bound in bounds]
    matching = [i for i, item in enumerate(items) if compare(item.range_key.cast_value, *values)]
    if not matching:
        return []
    first, last = matching[0], matching[-1]
    if last - first + 1 != len(matching):  # not a run (no key condition does this): let moto read them all
        return items
    return items[max(0, first - 1):last + 2]


def _query(original: Callable[..., Any]) -> Callable[..., Any]:
    signature = inspect.signature(original)

    def query(self: Any, *args: Any, **kwargs: Any) -> Any:
        """moto's Query; on the base table it sees the queried partition only, and of it, with a sort-key
        condition, the run of items that condition selects."""
        arguments = signature.bind(self, *args, **kwargs).arguments
        if arguments.get("index_name") is not None or arguments.get("hash_key") is None:
            return original(self, *args, **kwargs)
        items = partition_items(self, arguments["hash_key"])
        comparison, conditions = arguments.get("range_comparison"), arguments.get("range_key_conditions") or []
        on_sort_key = all(name == self.range_key_attr for name, _, _ in conditions) and len(conditions) <= 1
        if (comparison and comparison.upper() in KEY_RANGE_OPERATORS and on_sort_key and self.range_key_attr
                and not arguments.get("filter_kwargs")):  # a legacy QueryFilter: moto reads every item for it
            items = key_range_items(items, comparison.upper(), arguments.get("range_objs") or [])
        return original(_View(self, all_items=lambda: items), *args, **kwargs)

    return query


DYNAMODB_QUERY_COST = Patch(
    name="dynamodb-query-cost",
    aws="A Query reads only the items its key condition selects (a partition, and of it the sort-key range): its "
        "cost follows what it reads, not the size of the table or of the partition.",
    upstream="Table.query calls all_items(), which collects every item of the table, keeps those of the queried "
             "partition, sorts them comparing DynamoType objects in Python, then tests the sort-key condition and "
             "sizes every one: every GET /users?state=&city= read the whole target table, and a poll for one "
             "new user in a state of 600 users cost ~40 ms of the stack's CPU.",
    replacements=(
        Replacement("moto.dynamodb.models.table", "Table", "query",
                    "002b4d00be6df07cf37f6cbe0132e5eb89455ae12a8e79b23db3fb492450f21e", _query),
        # partition_items gives what it gives, for one partition
        Replacement("moto.dynamodb.models.table", "Table", "all_items",
                    "c80d2ee3c896acd0cab6ca35aaeae3ab3fb65858933f8a3403d4e027c240f31d"),
        # partition_items orders by cast_value as __lt__ does; key_range_items selects as compare does
        Replacement("moto.dynamodb.models.dynamo_type", "DynamoType", "__lt__",
                    "44033f9fbd16ab927b667a2a1b0de8312f6c7e612e42f17fe028115ebe071566"),
        Replacement("moto.dynamodb.models.dynamo_type", "DynamoType", "compare",
                    "5a77253bbdb399ee60bd2fc84aaf205a2e7ec3c71d32e9194d0ca6b4dd4da601"),
    ),
)


# --- DynamoDB Streams: shard iterators expire ---------------------------------------------------------------

ITERATOR_LIFETIME = 15 * 60.0  # seconds: DynamoDB Streams' shard iterators expire 15 minutes after they are issued
clock: Callable[[], float] = time.monotonic  # swappable in tests
_tracked_pruned_at = 0.0


def _expire_iterators(backend: Any, now: float) -> None:
    """Forget iterators past their lifetime, oldest first (the dict is in issue order), and let moto's registry of
    every model instance let go of them too, once a minute."""
    global _tracked_pruned_at
    from moto.dynamodbstreams.models import ShardIterator

    iterators = backend.shard_iterators
    while iterators:
        oldest = next(iter(iterators))
        if getattr(iterators[oldest], "expires_at", 0.0) > now:
            break
        del iterators[oldest]
    if now - _tracked_pruned_at >= 60:
        _tracked_pruned_at = now
        ShardIterator.instances_tracked[:] = [  # type: ignore[attr-defined]
            i for i in ShardIterator.instances_tracked if getattr(i, "expires_at", 0.0) > now]  # type: ignore[attr-defined]


def _issued(backend: Any, iterator: Any) -> Any:
    now = clock()
    iterator.expires_at = now + ITERATOR_LIFETIME
    _expire_iterators(backend, now)
    return iterator


def _get_shard_iterator(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_shard_iterator(self: Any, *args: Any, **kwargs: Any) -> Any:
        """moto's GetShardIterator; the iterator expires 15 minutes from now."""
        return _issued(self, original(self, *args, **kwargs))

    return get_shard_iterator


def _get_records(original: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    def get_records(self: Any, iterator_arn: str, limit: int) -> dict[str, Any]:
        """moto's GetRecords on an iterator that has not expired; the next iterator expires 15 minutes from now."""
        from moto.core.exceptions import JsonRESTError

        found = self.shard_iterators.get(iterator_arn)
        if found is None or getattr(found, "expires_at", 0.0) <= clock():
            raise JsonRESTError("ExpiredIteratorException", "Iterator expired (shard iterators expire 15 minutes "
                                                                "after they are issued); get a new one")
        answer = original(self, iterator_arn, limit)
        _issued(self, self.shard_iterators[answer["NextShardIterator"]])
        return answer

    return get_records


DYNAMODB_STREAMS_ITERATORS = Patch(
    name="dynamodbstreams-iterators",
    aws="A shard iterator expires 15 minutes after it is issued (GetRecords then answers ExpiredIteratorException); "
        "a stream polled for a day costs no more memory than one polled for a minute.",
    upstream="DynamoDBStreamsBackend keeps every iterator it ever issued (GetRecords issues one per call: 12 a second "
             "from the local stack's idle pollers), each also held by moto's registry of model instances: ~80 MB an "
             "hour of idle polling; an unknown iterator is a KeyError (HTTP 500).",
    replacements=(
        Replacement("moto.dynamodbstreams.models", "DynamoDBStreamsBackend", "get_shard_iterator",
                    "a0be676df0bfc9ef0fdb546a45df0f1510de564d215dcafffbd144a8f04219ef", _get_shard_iterator),
        Replacement("moto.dynamodbstreams.models", "DynamoDBStreamsBackend", "get_records",
                    "db8c6cb04430c08f76be9e6b3cc9317387643b4fee26f43071c5ac22e25d2b64", _get_records),
        # it registers the next iterator in shard_iterators, where get_records stamps it
        Replacement("moto.dynamodbstreams.models", "ShardIterator", "get",
                    "8932c0f7250e89963eef1e848bdd205a05c0f6ed94f526ed36ca9b7339442ace"),
    ),
)


# --- the emulator itself: a request finds its service at once ---------------------------------------------


def _get_backend_for_host(original: Callable[..., Any]) -> Callable[..., Any]:
    routes: dict[str, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        """moto's answer for `host`, worked out once: it reads only moto's installed packages and URL patterns."""
        if host is None or host not in routes:
            backend = original(self, host)
            if host is None or not backend:
                return backend  # nothing found is moto's to say again (it prints why)
            routes[host] = backend
        return routes[host]

    return get_backend_for_host


EMULATOR_REQUEST_ROUTING = Patch(
    name="emulator-request-routing",
    aws="Each service answers on its own endpoint: finding the service a request is for costs nothing, and a "
        "request to one service never waits for a request to another.",
    upstream="DomainDispatcherApplication.get_backend_for_host, for every request and holding the dispatcher's one "
             "lock, lists moto's package directory and stats each of its ~170 entries (list_of_moto_modules) before "
             "trying its URL patterns: 0.4-1.4 ms of file-system calls per request on a quiet machine, each call "
             "giving up and taking back the GIL, while every other request to the emulator waits for the lock.",
    replacements=(Replacement("moto.moto_server.werkzeug_app", "DomainDispatcherApplication", "get_backend_for_host",
                              "1f41972c1e4e660fbf4e4ddfeeed2fdff56dc105a8f8e1bf015640f710ef511a",
                              _get_backend_for_host),),
)


PATCHES: tuple[Patch, ...] = (SQS_SEND_COST, EVENTS_EXACT_DETAIL, EVENTS_DEFAULT_INPUT, EVENTS_TARGET_FAILURES,
                              DYNAMODB_QUERY_COST, DYNAMODB_STREAMS_ITERATORS, EMULATOR_REQUEST_ROUTING)


# --- applying ---------------------------------------------------------------------------------------------


def source_sha256(value: Any) -> str:
    """Hash of a function's (or a property getter's) source, as `Replacement.source_sha256` records it."""
    function: Any = value.fget if isinstance(value, property) else value
    return hashlib.sha256(inspect.getsource(function).encode()).hexdigest()


def _resolve(replacement: Replacement) -> tuple[type, Any]:
    owner = getattr(importlib.import_module(replacement.module), replacement.owner)
    return owner, owner.__dict__.get(replacement.attribute)


def check(patches: tuple[Patch, ...] = PATCHES) -> list[str]:
    """The replaced functions whose source is not what their patch was written against (none: all good)."""
    changed = []
    for patch in patches:
        for replacement in patch.replacements:
            where = f"{replacement.module}.{replacement.owner}.{replacement.attribute}"
            try:
                _, original = _resolve(replacement)
                problem = "not found" if original is None else (
                    "" if source_sha256(original) == replacement.source_sha256 else "source changed")
            except (ImportError, AttributeError, OSError, TypeError) as error:
                problem = f"unreadable ({error})"
            if problem:
                changed.append(f"{where} (patch {patch.name}): {problem}")
    return changed


_lock = threading.Lock()
_originals: list[tuple[type, str, Any]] = []  # what apply() replaced, to put back
_users = 0


def apply(patches: tuple[Patch, ...] = PATCHES) -> None:
    """Check every patch, then apply them all (or none: MotoPatchError). Nested calls share one application;
    each caller undoes its own with `release()`."""
    global _users
    with _lock:
        if _users == 0:
            changed = check(patches)
            if changed:
                from importlib.metadata import version

                raise MotoPatchError(
                    f"moto {version('moto')} is installed, but the local stack's moto patch layer was written for "
                    f"moto {MOTO_VERSION} and these functions changed: {'; '.join(changed)}. Read each one in the "
                    f"new moto, then update or drop its patch in local_stack/moto_patches.py (with its source hash), "
                    f"or install moto {MOTO_VERSION} (requirements-dev.txt).")
            for patch in patches:
                for replacement in patch.replacements:
                    if replacement.build is None:
                        continue
                    owner, original = _resolve(replacement)
                    _originals.append((owner, replacement.attribute, original))
                    setattr(owner, replacement.attribute, replacement.build(
                        original.fget if isinstance(original, property) else original))
        _users += 1


def release() -> None:
    """One `apply()` caller is done; the last one puts moto back as it was."""
    global _users
    with _lock:
        _users = max(0, _users - 1)
        if _users == 0:
            while _originals:
                owner, attribute, original = _originals.pop()
                setattr(owner, attribute, original)
