"""stream-pipeline: the wiring diagram. Every body is one line into chalicelib/."""

import os

from chalice import Chalice, IAMAuthorizer
from chalice.app import Request

from chalicelib import components
from chalicelib.config import API_AUTH_IAM, api_auth
from chalicelib.consumer_runtime import records_of
from chalicelib.observability.invocation import observe_request, observed

app = Chalice(app_name="stream-pipeline")

# Every route, reads too (they return personal data), needs SigV4 unless the stage sets API_AUTH=none (dev).
# Read at import: `chalice package/deploy` put the stage's variables in the environment first.
AUTH = IAMAuthorizer() if api_auth() == API_AUTH_IAM else None


# Every log line is one JSON object, with the Lambda request id (and the consumer, on event handlers).
def current_request() -> Request:
    """The request being served (Chalice sets it before any route runs)."""
    request = app.current_request
    assert request is not None
    return request


@app.middleware("http")
def structured_logs(request, get_response):
    return observe_request(app.log, request, get_response)


# --- Users API -----------------------------------------------------------------------------------

@app.route("/users", methods=["POST"], authorizer=AUTH)
def create_user():
    return components.users_routes().create(current_request())


@app.route("/users", methods=["GET"], authorizer=AUTH)
def list_users():
    return components.users_routes().list(current_request())


@app.route("/users/{email}", methods=["GET"], authorizer=AUTH)
def get_user(email):
    return components.users_routes().get(email)


@app.route("/users/{email}", methods=["PATCH"], authorizer=AUTH)
def update_user(email):
    return components.users_routes().update(email, current_request())


@app.route("/users/{email}", methods=["DELETE"], authorizer=AUTH)
def delete_user(email):
    return components.users_routes().delete(email)


# --- Users stream consumers (a shard serves at most two readers: these two) ---------------------

@app.on_dynamodb_record(stream_arn=os.environ["USERS_STREAM_ARN"], batch_size=100,
                        starting_position="TRIM_HORIZON", name="replicate_users")
@observed("replication")
def replicate_users(event):
    return components.replication_consumer().handle(records_of(event))


@app.on_dynamodb_record(stream_arn=os.environ["USERS_STREAM_ARN"], batch_size=100,
                        starting_position="TRIM_HORIZON", name="fanout_users")
@observed("fanout")
def fanout_users(event):
    return components.fanout_consumer().handle(records_of(event))


# --- Ingestion ----------------------------------------------------------------------------------
# Up to 100 messages (4 BatchWriteItem calls) or 1 s of gathering per invocation: few invocations under load.

@app.on_sqs_message(queue=os.environ["INGEST_QUEUE"], batch_size=100, maximum_batching_window_in_seconds=1,
                    name="ingest_device_metadata")
@observed("ingest")
def ingest_device_metadata(event):
    return components.ingest_consumer().handle(records_of(event))


# --- Orders: answer 202 at once; the orders stream runs the job ----------------------------------

@app.route("/orders", methods=["POST"], authorizer=AUTH)
def create_order():
    return components.orders_routes().create(current_request())


@app.route("/orders", methods=["GET"], authorizer=AUTH)
def list_orders():
    return components.orders_routes().list(current_request())


@app.route("/orders/{id}", methods=["GET"], authorizer=AUTH)
def get_order(id):
    return components.orders_routes().get(id)


@app.on_dynamodb_record(stream_arn=os.environ["ORDERS_STREAM_ARN"], batch_size=100,
                        starting_position="TRIM_HORIZON", name="process_orders")
@observed("orders")
def process_orders(event):
    return components.order_processor().handle(records_of(event))
