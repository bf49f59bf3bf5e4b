"""Lazy getters that assemble each capability from settings and clients, at call time.

Nothing here runs at import: no client exists until a handler needs one, each function imports only
the modules of its own capability (cold start), and tests swap clients through `chalicelib.clients`.
Each consumer comes wrapped in its `ConsumerRuntime`: `.handle(records)` for Lambda (logs and EMF metrics
included), `.process(records)` for redrive (the Outcome, nothing delivered, nothing emitted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib import clients
from chalicelib.config import Settings

if TYPE_CHECKING:
    from chalicelib.consumer_runtime import ConsumerRuntime
    from chalicelib.dead_letters import DeadLetterQueue, LetterStore
    from chalicelib.orders.repository import OrdersRepository
    from chalicelib.orders.routes import OrdersRoutes
    from chalicelib.users.repository import UsersRepository
    from chalicelib.users.routes import UsersRoutes


def settings() -> Settings:
    """The stage's configuration, read now (Chalice's test client patches it per request)."""
    return Settings.from_env()


def letter_store() -> LetterStore:
    """DEAD_LETTER_BUCKET: letters too large for their queue."""
    from chalicelib.dead_letters import LetterStore

    return LetterStore(clients.client("s3"), settings().dead_letter_bucket)


def stream_dead_letters() -> DeadLetterQueue:
    """The STREAM_DLQ_URL queue."""
    from chalicelib.dead_letters import DeadLetterQueue

    return DeadLetterQueue(clients.client("sqs"), settings().stream_dlq_url, letter_store())


def ingest_dead_letters() -> DeadLetterQueue:
    """The INGEST_DLQ_URL queue."""
    from chalicelib.dead_letters import DeadLetterQueue

    return DeadLetterQueue(clients.client("sqs"), settings().ingest_dlq_url, letter_store())


def users_repository() -> UsersRepository:
    """Users storage over USERS_TABLE and USERS_BY_LOCATION_TABLE."""
    from chalicelib.users.repository import UsersRepository

    config = settings()
    return UsersRepository(clients.client("dynamodb"), config.users_table, config.users_by_location_table)


def users_routes() -> UsersRoutes:
    """Route bodies of the users API."""
    from chalicelib.users.routes import UsersRoutes

    return UsersRoutes(users_repository)


def replication_consumer() -> ConsumerRuntime:
    """Users stream → USERS_BY_LOCATION_TABLE; what cannot be written → STREAM_DLQ_URL."""
    from chalicelib.batch_writer import BatchWriter
    from chalicelib.consumer_runtime import ConsumerRuntime
    from chalicelib.replication.consumer import ReplicationConsumer
    from chalicelib.replication.projection import TARGET_KEY_NAMES

    writer = BatchWriter(clients.client("dynamodb"), settings().users_by_location_table, TARGET_KEY_NAMES)
    return ConsumerRuntime(ReplicationConsumer(writer), stream_dead_letters(),
                           metrics_namespace=settings().metrics_namespace)


def fanout_consumer() -> ConsumerRuntime:
    """Users stream → EVENT_BUS_NAME (attempts: FANOUT_MAX_ATTEMPTS, sizes: EVENT_MAX_BYTES) → STREAM_DLQ_URL."""
    from chalicelib.backoff import Backoff
    from chalicelib.consumer_runtime import ConsumerRuntime
    from chalicelib.fanout.consumer import FanoutConsumer
    from chalicelib.fanout.publisher import EventPublisher

    config = settings()
    publisher = EventPublisher(clients.client("events"), config.event_bus_name,
                               Backoff(max_attempts=config.fanout_max_attempts), config.event_max_bytes)
    consumer = FanoutConsumer(publisher, config.event_source, config.users_table, max_bytes=config.event_max_bytes)
    return ConsumerRuntime(consumer, stream_dead_letters(), metrics_namespace=config.metrics_namespace)


def ingest_consumer() -> ConsumerRuntime:
    """INGEST_QUEUE → DEVICE_METADATA_TABLE; invalid messages → INGEST_DLQ_URL; the rest stays in the queue."""
    from chalicelib.backoff import Backoff
    from chalicelib.batch_writer import BatchWriter
    from chalicelib.consumer_runtime import ConsumerRuntime
    from chalicelib.ingest.consumer import IngestConsumer
    from chalicelib.ingest.messages import ITEM_KEY_NAMES
    from chalicelib.source_queue import SourceQueue

    # Fewer write attempts than replication: a throttled message is safe in its queue and comes back later,
    # and the worst case (4 attempts x 4 chunks x botocore's own retries) stays inside the 60 s timeout.
    writer = BatchWriter(clients.client("dynamodb"), settings().device_metadata_table, ITEM_KEY_NAMES,
                         Backoff(max_attempts=4))
    return ConsumerRuntime(IngestConsumer(writer), ingest_dead_letters(), SourceQueue(clients.client("sqs")),
                           metrics_namespace=settings().metrics_namespace)


def orders_repository() -> OrdersRepository:
    """Order storage over ORDERS_TABLE."""
    from chalicelib.orders.repository import OrdersRepository

    return OrdersRepository(clients.client("dynamodb"), settings().orders_table)


def orders_routes() -> OrdersRoutes:
    """Route bodies of the orders API."""
    from chalicelib.orders.routes import OrdersRoutes

    return OrdersRoutes(orders_repository)


def order_processor() -> ConsumerRuntime:
    """Orders stream → PENDING orders become PROCESSED or FAILED; what cannot be applied → STREAM_DLQ_URL."""
    from chalicelib.consumer_runtime import ConsumerRuntime
    from chalicelib.orders.processing import OrderProcessor

    return ConsumerRuntime(OrderProcessor(orders_repository()), stream_dead_letters(),
                           metrics_namespace=settings().metrics_namespace)
