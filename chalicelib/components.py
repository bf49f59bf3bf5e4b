"""Lazy getters that assemble each capability from settings and clients, at call time.

Nothing here runs at import: no client exists until a handler needs one, each function imports only
the modules of its own capability (cold start), and tests swap clients through `chalicelib.clients`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib import clients
from chalicelib.config import Settings

if TYPE_CHECKING:
    from chalicelib.dead_letters import DeadLetterQueue
    from chalicelib.fanout.consumer import FanoutConsumer
    from chalicelib.ingest.consumer import IngestConsumer
    from chalicelib.orders.processing import OrderProcessor
    from chalicelib.orders.repository import OrdersRepository
    from chalicelib.orders.routes import OrdersRoutes
    from chalicelib.replication.consumer import ReplicationConsumer
    from chalicelib.users.repository import UsersRepository
    from chalicelib.users.routes import UsersRoutes


def settings() -> Settings:
    """The stage's configuration, read now (Chalice's test client patches it per request)."""
    return Settings.from_env()


def stream_dead_letters() -> DeadLetterQueue:
    """The STREAM_DLQ_URL queue."""
    from chalicelib.dead_letters import DeadLetterQueue

    return DeadLetterQueue(clients.client("sqs"), settings().stream_dlq_url)


def users_repository() -> UsersRepository:
    """Users storage over USERS_TABLE and USERS_BY_LOCATION_TABLE."""
    from chalicelib.users.repository import UsersRepository

    config = settings()
    return UsersRepository(clients.client("dynamodb"), config.users_table, config.users_by_location_table)


def users_routes() -> UsersRoutes:
    """Route bodies of the users API."""
    from chalicelib.users.routes import UsersRoutes

    return UsersRoutes(users_repository)


def replication_consumer() -> ReplicationConsumer:
    """Users stream → USERS_BY_LOCATION_TABLE."""
    from chalicelib.batch_writer import BatchWriter
    from chalicelib.replication.consumer import ReplicationConsumer
    from chalicelib.replication.projection import TARGET_KEY_NAMES

    writer = BatchWriter(clients.client("dynamodb"), settings().users_by_location_table, TARGET_KEY_NAMES)
    return ReplicationConsumer(writer, stream_dead_letters())


def fanout_consumer(dead_letters: DeadLetterQueue | None = None) -> FanoutConsumer:
    """Users stream → EVENT_BUS_NAME (publish attempts: FANOUT_MAX_ATTEMPTS); `dead_letters` for redrive."""
    from chalicelib.backoff import Backoff
    from chalicelib.fanout.consumer import FanoutConsumer
    from chalicelib.fanout.publisher import EventPublisher

    config = settings()
    publisher = EventPublisher(clients.client("events"), config.event_bus_name,
                               Backoff(max_attempts=config.fanout_max_attempts))
    return FanoutConsumer(publisher, dead_letters or stream_dead_letters(), config.event_source, config.users_table)


def ingest_consumer(dead_letters: DeadLetterQueue | None = None) -> IngestConsumer:
    """INGEST_QUEUE → DEVICE_METADATA_TABLE; invalid messages → INGEST_DLQ_URL (or `dead_letters`, for redrive)."""
    from chalicelib.backoff import Backoff
    from chalicelib.batch_writer import BatchWriter
    from chalicelib.dead_letters import DeadLetterQueue
    from chalicelib.ingest.consumer import IngestConsumer
    from chalicelib.ingest.messages import ITEM_KEY_NAMES
    from chalicelib.ingest.source_queue import SourceQueue

    config = settings()
    sqs = clients.client("sqs")
    # Fewer write attempts than replication: a throttled message is safe in its queue and comes back later,
    # and the worst case (4 attempts x 4 chunks x botocore's own retries) stays inside the 60 s timeout.
    writer = BatchWriter(clients.client("dynamodb"), config.device_metadata_table, ITEM_KEY_NAMES,
                         Backoff(max_attempts=4))
    return IngestConsumer(writer, dead_letters or DeadLetterQueue(sqs, config.ingest_dlq_url), SourceQueue(sqs))


def orders_repository() -> OrdersRepository:
    """Order storage over ORDERS_TABLE."""
    from chalicelib.orders.repository import OrdersRepository

    return OrdersRepository(clients.client("dynamodb"), settings().orders_table)


def orders_routes() -> OrdersRoutes:
    """Route bodies of the orders API."""
    from chalicelib.orders.routes import OrdersRoutes

    return OrdersRoutes(orders_repository)


def order_processor(dead_letters: DeadLetterQueue | None = None) -> OrderProcessor:
    """Orders stream → PENDING orders become PROCESSED or FAILED; what cannot be applied → STREAM_DLQ_URL."""
    from chalicelib.orders.processing import OrderProcessor

    return OrderProcessor(orders_repository(), dead_letters or stream_dead_letters())
