"""The local stack's moto patch layer: one test per patch, each showing moto as shipped (what the patch is
for, so an upstream fix is noticed) and moto patched (AWS's behaviour); plus the refusal to patch a moto
whose functions changed shape. In-process moto; the layer is applied for one test and undone after it."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from local_stack import moto_patches

PATCHED, SHIPPED = "patched", "moto as shipped"


@pytest.fixture
def moto() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture(params=[PATCHED, SHIPPED])
def layer(request: pytest.FixtureRequest, moto: None) -> Iterator[str]:
    """Each test runs twice: with the patch layer applied, and on moto as shipped."""
    if request.param == PATCHED:
        moto_patches.apply()
    try:
        yield request.param
    finally:
        if request.param == PATCHED:
            moto_patches.release()


@pytest.fixture
def patched(moto: None) -> Iterator[None]:
    moto_patches.apply()
    try:
        yield
    finally:
        moto_patches.release()


def queue(name: str, **attributes: str) -> tuple[str, str]:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    return url, sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def bodies(url: str) -> list[str]:
    sqs, found = boto3.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            found.append(message)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return found


# --- sqs-send-cost ----------------------------------------------------------------------------------------


class Reads:
    """Counts reads of `Message.visible`: the per-message work of a scan over a queue."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        from moto.sqs.models import Message

        self.count = 0
        visible = Message.visible

        def counted(message: Any) -> bool:
            self.count += 1
            return visible.fget(message)  # type: ignore[attr-defined]

        monkeypatch.setattr(Message, "visible", property(counted))


def test_a_send_does_not_scan_the_queue_and_its_counts_stay_exact(layer, monkeypatch):
    # GIVEN a queue nobody drains, holding 300 messages (3 of them received: in flight)
    sqs = boto3.client("sqs")
    url, _ = queue("deep")
    for start in range(0, 300, 10):
        sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": f"m{start + i}"}
                                                      for i in range(10)])
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=3, VisibilityTimeout=300)
    reads = Reads(monkeypatch)

    # WHEN one more message is sent
    sqs.send_message(QueueUrl=url, MessageBody="one more")

    # THEN patched, the send looked at no message; as shipped, it scanned the whole queue
    assert reads.count == 0 if layer == PATCHED else reads.count >= 300
    # AND the counts are exact whenever they are asked for
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessages"], attributes["ApproximateNumberOfMessagesNotVisible"],
            attributes["ApproximateNumberOfMessagesDelayed"]) == ("298", "3", "0")


def test_patched_queue_attributes_are_exactly_moto_s_for_every_kind_of_queue(moto):
    from moto.sqs.models import Queue, sqs_backends

    sqs = boto3.client("sqs")
    _, dlq_arn = queue("dlq")
    queue("plain", DelaySeconds="2")
    queue("redriven", RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 3}))
    queue("ordered.fifo", FifoQueue="true", ContentBasedDeduplication="true", KmsMasterKeyId="alias/k")
    sqs.set_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName="plain")["QueueUrl"], Attributes={
        "Policy": json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "sqs:SendMessage", "Resource": "*"}]})})
    shipped = Queue.attributes.fget  # type: ignore[attr-defined]
    for name, found in sqs_backends["123456789012"]["us-east-1"].queues.items():
        lazy = moto_patches.QueueAttributes(found)
        assert dict(lazy) == shipped(found), name
        assert list(lazy) == list(shipped(found)), name
        assert lazy.get("NoSuchAttribute") is None


# --- events-default-input ---------------------------------------------------------------------------------


def test_a_target_without_input_transformer_gets_the_whole_event_without_a_parser_per_event(layer, monkeypatch):
    import jsonpath_ng.ext

    url, arn = queue("whole")
    events = bus_with_rule([{"Id": "q", "Arn": arn}])
    parsers = []
    parse = jsonpath_ng.ext.parse
    monkeypatch.setattr(jsonpath_ng.ext, "parse", lambda text: parsers.append(text) or parse(text))

    events.put_events(Entries=entries(2))

    delivered = [json.loads(m["Body"]) for m in bodies(url)]
    assert [e["detail"] for e in delivered] == [{"n": 1}, {"n": 1}]
    common = {"version", "id", "detail-type", "source", "time", "region", "resources", "detail"}
    if layer == SHIPPED:
        assert len(parsers) == 2 * 8  # a new jsonpath parser per path, per event
        assert all(set(e) == common for e in delivered)  # and no account
        return
    assert parsers == []
    assert all(set(e) == common | {"account"} and e["account"] == "123456789012" for e in delivered)
    assert delivered[0]["source"] == "test" and delivered[0]["detail-type"] == "T"


# --- events-target-failures -------------------------------------------------------------------------------


def bus_with_rule(targets: list[dict[str, Any]]) -> Any:
    events = boto3.client("events")
    events.create_event_bus(Name="bus")
    events.put_rule(Name="everything", EventBusName="bus", EventPattern=json.dumps({"source": ["test"]}))
    events.put_targets(Rule="everything", EventBusName="bus", Targets=targets)
    return events


def entries(count: int, detail: str = '{"n": 1}') -> list[dict[str, Any]]:
    return [{"Source": "test", "DetailType": "T", "Detail": detail, "EventBusName": "bus"} for _ in range(count)]


def test_a_target_whose_queue_does_not_exist_fails_alone(layer, caplog):
    # GIVEN a rule with a target whose queue is gone (with a dead-letter queue), and a working target
    good, good_arn = queue("subscriber")
    dead, dead_arn = queue("target-dlq")
    missing_arn = "arn:aws:sqs:us-east-1:123456789012:deleted-long-ago"
    events = bus_with_rule([{"Id": "gone", "Arn": missing_arn, "DeadLetterConfig": {"Arn": dead_arn}},
                            {"Id": "ok", "Arn": good_arn}])

    # WHEN three events are put
    if layer == SHIPPED:
        # moto as shipped: the whole PutEvents fails, for every target
        with pytest.raises(ClientError, match="QueueDoesNotExist|NonExistentQueue"):
            events.put_events(Entries=entries(3))
        return
    with caplog.at_level(logging.WARNING, logger="local_stack.emulator"):
        answer = events.put_events(Entries=entries(3))

    # THEN PutEvents succeeds and the working target receives every event
    assert answer["FailedEntryCount"] == 0 and all("EventId" in e for e in answer["Entries"])
    assert len(bodies(good)) == 3
    # AND each failure is in the target's dead-letter queue, saying why
    letters = boto3.client("sqs").receive_message(QueueUrl=dead, MaxNumberOfMessages=10,
                                                  MessageAttributeNames=["All"])["Messages"]
    assert len(letters) == 3
    attributes = {k: v["StringValue"] for k, v in letters[0]["MessageAttributes"].items()}
    assert attributes["ERROR_CODE"] == "RESOURCE_NOT_FOUND"
    assert attributes["TARGET_ARN"] == missing_arn and attributes["RULE_ARN"].endswith(":rule/bus/everything")
    assert json.loads(letters[0]["Body"])["detail"] == {"n": 1}
    # AND AWS/Events FailedInvocations counts them for the rule
    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace="AWS/Events", MetricName="FailedInvocations", StartTime="2000-01-01", EndTime="2100-01-01",
        Dimensions=[{"Name": "RuleName", "Value": "everything"}], Period=86400, Statistics=["Sum"])
    assert sum(point["Sum"] for point in stats["Datapoints"]) == 3
    # AND the stack logs it (the first failure of that target; then every 100th)
    failures = [r.getMessage() for r in caplog.records if "target gone" in r.getMessage()]
    assert len(failures) == 1 and "RESOURCE_NOT_FOUND" in failures[0] and "deleted-long-ago" in failures[0]


# --- events-exact-detail ----------------------------------------------------------------------------------

INT_20 = "12345678901234567890"
DECIMAL_38 = "1234567890123456789.0123456789012345678"
DETAIL = f'{{"keys": {{"id": "u-1"}}, "newImage": {{"big": {INT_20}, "exact": {DECIMAL_38}, "tiny": 1E-130}}}}'


def test_an_sqs_target_receives_the_detail_with_every_digit(layer):
    url, arn = queue("subscriber")
    events = bus_with_rule([{"Id": "q", "Arn": arn}])

    events.put_events(Entries=entries(1, DETAIL))

    [message] = bodies(url)
    body = message["Body"]
    if layer == SHIPPED:
        assert DECIMAL_38 not in body and "1.2345678901234568e+18" in body  # parsed as a float
        return
    assert INT_20 in body and DECIMAL_38 in body
    event = json.loads(body, parse_float=Decimal)
    assert event["detail"] == json.loads(DETAIL, parse_float=Decimal)
    assert (event["source"], event["detail-type"]) == ("test", "T")
    assert event["time"].endswith("Z") and event["id"]


def test_a_transformed_target_still_gets_what_its_input_transformer_makes(patched):
    url, arn = queue("transformed")
    events = bus_with_rule([{"Id": "q", "Arn": arn, "InputTransformer": {
        "InputPathsMap": {"id": "$.detail.keys.id"}, "InputTemplate": '{"user": "<id>"}'}}])

    events.put_events(Entries=entries(1, DETAIL))

    assert [json.loads(m["Body"]) for m in bodies(url)] == [{"user": "u-1"}]


# --- dynamodb-query-cost ----------------------------------------------------------------------------------


def run_queries(dynamodb: Any) -> list[Any]:
    """Queries of every shape the project and a user make, with pagination followed to the end."""
    shapes: list[dict[str, Any]] = [
        {"KeyConditionExpression": "#s = :s", "ExpressionAttributeValues": {":s": {"S": "OH"}}},
        {"KeyConditionExpression": "#s = :s AND begins_with(city_email, :c)",
         "ExpressionAttributeValues": {":s": {"S": "OH"}, ":c": {"S": "Columbus#"}}, "Limit": 3},
        {"KeyConditionExpression": "#s = :s AND city_email BETWEEN :a AND :b", "ScanIndexForward": False,
         "ExpressionAttributeValues": {":s": {"S": "NY"}, ":a": {"S": "B"}, ":b": {"S": "M"}}, "Limit": 4},
        {"KeyConditionExpression": "#s = :s", "FilterExpression": "active = :t",
         "ExpressionAttributeValues": {":s": {"S": "NY"}, ":t": {"BOOL": True}}, "Limit": 5},
        {"KeyConditionExpression": "#s = :s", "ExpressionAttributeValues": {":s": {"S": "nowhere"}}},
        {"IndexName": "by-city", "KeyConditionExpression": "city = :c",
         "ExpressionAttributeValues": {":c": {"S": "Columbus"}}, "ExpressionAttributeNames": {}},
        {"KeyConditionExpression": "#s = :s AND city_email = :e",
         "ExpressionAttributeValues": {":s": {"S": "CA"}, ":e": {"S": "Dayton#a8@example.com"}}},
        {"KeyConditionExpression": "#s = :s AND city_email < :e", "ScanIndexForward": False,
         "ExpressionAttributeValues": {":s": {"S": "CA"}, ":e": {"S": "Columbus"}}, "Limit": 2},
        {"KeyConditionExpression": "#s = :s AND city_email >= :e",
         "ExpressionAttributeValues": {":s": {"S": "OH"}, ":e": {"S": "Dayton"}}, "Limit": 5},
        {"KeyConditionExpression": "#s = :s AND begins_with(city_email, :c)", "ScanIndexForward": False,
         "ExpressionAttributeValues": {":s": {"S": "NY"}, ":c": {"S": "Akron#"}}, "Limit": 1},
        {"KeyConditionExpression": "#s = :s AND begins_with(city_email, :c)",
         "ExpressionAttributeValues": {":s": {"S": "NY"}, ":c": {"S": "Nowhere#"}}},
        {"KeyConditions": {"state": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "OH"}]},
                           "city_email": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [{"S": "A"}]}},
         "ExpressionAttributeNames": {}},
        {"KeyConditions": {"state": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "OH"}]},
                           "city_email": {"ComparisonOperator": "BEGINS_WITH", "AttributeValueList": [{"S": "A"}]}},
         "QueryFilter": {"active": {"ComparisonOperator": "EQ", "AttributeValueList": [{"BOOL": True}]}},
         "ExpressionAttributeNames": {}},
    ]
    answers = []
    for shape in shapes:
        arguments: dict[str, Any] = {"TableName": "places", "ExpressionAttributeNames": {"#s": "state"}, **shape}
        if not arguments["ExpressionAttributeNames"] or "#s" not in arguments.get("KeyConditionExpression", ""):
            arguments.pop("ExpressionAttributeNames")
        while True:
            page = dynamodb.query(**arguments)
            answers.append((page["Items"], page["Count"], page["ScannedCount"], page.get("LastEvaluatedKey")))
            if "LastEvaluatedKey" not in page:
                break
            arguments["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    answers.append(dynamodb.query(TableName="users", KeyConditionExpression="email = :e",
                                  ExpressionAttributeValues={":e": {"S": "a7@example.com"}})["Items"])
    return answers


def test_a_query_reads_its_partition_only_and_answers_as_before(moto, monkeypatch):
    # GIVEN a keyed table (3 partitions, 60 items, a GSI) and a hash-only table
    from moto.dynamodb.models.table import Table

    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(TableName="places", BillingMode="PAY_PER_REQUEST", AttributeDefinitions=[
        {"AttributeName": "state", "AttributeType": "S"}, {"AttributeName": "city_email", "AttributeType": "S"},
        {"AttributeName": "city", "AttributeType": "S"}], KeySchema=[
        {"AttributeName": "state", "KeyType": "HASH"}, {"AttributeName": "city_email", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{"IndexName": "by-city", "KeySchema": [{"AttributeName": "city", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}])
    dynamodb.create_table(TableName="users", BillingMode="PAY_PER_REQUEST", AttributeDefinitions=[
        {"AttributeName": "email", "AttributeType": "S"}], KeySchema=[{"AttributeName": "email", "KeyType": "HASH"}])
    cities = ("Akron", "Brooklyn", "Columbus", "Dayton", "Manhattan")
    for i in range(60):
        state, city = ("OH", "NY", "CA")[i % 3], cities[i % 5]
        dynamodb.put_item(TableName="places", Item={"state": {"S": state}, "city": {"S": city}, "active": {
            "BOOL": i % 2 == 0}, "city_email": {"S": f"{city}#a{i}@example.com"}})
        dynamodb.put_item(TableName="users", Item={"email": {"S": f"a{i}@example.com"}})
    calls = []
    all_items = Table.all_items

    @functools.wraps(all_items)  # the layer pins all_items' source: a counting wrapper keeps it
    def counted(table: Any) -> Any:
        calls.append(table.name)
        return all_items(table)

    monkeypatch.setattr(Table, "all_items", counted)

    # WHEN the same queries run on moto as shipped, then patched
    shipped = run_queries(dynamodb)
    shipped_calls, calls[:] = list(calls), []
    moto_patches.apply()
    try:
        patched = run_queries(dynamodb)
    finally:
        moto_patches.release()

    # THEN every answer is the same, and only the index query still reads the whole table
    assert patched == shipped
    assert shipped_calls.count("places") >= 8 and shipped_calls.count("users") == 1
    assert calls == ["places"]  # the GSI query: an index is not partitioned by the table's key


@pytest.mark.parametrize("condition, value", [("begins_with(city_email, :c)", "Probe 7#"),
                                              ("city_email = :c", "Probe 7#p@example.com")])
def test_a_query_with_a_sort_key_condition_reads_only_the_items_it_selects(layer, monkeypatch, condition, value):
    # GIVEN a state of 300 users, and one more in a city of its own (the local stack's POST → queryable probe)
    from moto.dynamodb.models.dynamo_type import DynamoType, Item

    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(TableName="places", BillingMode="PAY_PER_REQUEST", AttributeDefinitions=[
        {"AttributeName": "state", "AttributeType": "S"}, {"AttributeName": "city_email", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "state", "KeyType": "HASH"}, {"AttributeName": "city_email", "KeyType": "RANGE"}])
    for i in range(300):
        dynamodb.put_item(TableName="places", Item={"state": {"S": "OH"}, "city_email": {"S": f"City {i % 20}#u{i}"}})
    dynamodb.put_item(TableName="places", Item={"state": {"S": "OH"}, "city_email": {"S": "Probe 7#p@example.com"}})
    sized: list[Any] = []
    compared: list[Any] = []
    size, less = Item.size, DynamoType.__lt__
    monkeypatch.setattr(Item, "size", lambda item: sized.append(item) or size(item))
    monkeypatch.setattr(DynamoType, "__lt__", lambda a, b: compared.append(a) or less(a, b))

    # WHEN the new user is queried by its sort key (the first condition is GET /users?state=OH&city=Probe 7&limit=1's)
    answer = dynamodb.query(TableName="places", KeyConditionExpression=f"#s = :s AND {condition}",
                            ExpressionAttributeNames={"#s": "state"}, Limit=1, ExpressionAttributeValues={
                                ":s": {"S": "OH"}, ":c": {"S": value}})

    # THEN it is found; patched, moto sized the match and its neighbour and sorted no more than them; as shipped it
    # sized and sorted all 301 items of the state
    assert [item["city_email"]["S"] for item in answer["Items"]] == ["Probe 7#p@example.com"]
    read = {item.range_key.value for item in sized}
    if layer == PATCHED:
        assert read == {"Probe 7#p@example.com", "City 9#u9"} and len(compared) <= 2
    else:
        assert len(read) == 301 and len(compared) >= 301


# --- dynamodbstreams-iterators ----------------------------------------------------------------------------


def test_shard_iterators_expire_after_15_minutes_and_are_forgotten(layer, monkeypatch):
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    # GIVEN a table with a stream and one record in it
    dynamodb, streams = boto3.client("dynamodb"), boto3.client("dynamodbstreams")
    arn = dynamodb.create_table(
        TableName="t", BillingMode="PAY_PER_REQUEST", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )["TableDescription"]["LatestStreamArn"]
    dynamodb.put_item(TableName="t", Item={"k": {"S": "a"}})
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    now = [1000.0]
    monkeypatch.setattr(moto_patches, "clock", lambda: now[0])
    first = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    # WHEN it is polled as the local stack polls an idle stream, for 20 minutes
    iterator, records = first, []
    for _ in range(40):
        answer = streams.get_records(ShardIterator=iterator)
        records += answer["Records"]
        iterator = answer["NextShardIterator"]
        now[0] += 30
    backend = dynamodbstreams_backends["123456789012"]["us-east-1"]

    # THEN the record was read once; patched, moto holds only the iterators of the last 15 minutes and the first one
    # has expired, as on AWS; as shipped, it holds every iterator it ever issued and the first still works
    assert len(records) == 1
    if layer == SHIPPED:
        assert len(backend.shard_iterators) == 41
        assert streams.get_records(ShardIterator=first)["Records"]
        return
    assert len(backend.shard_iterators) == 15 * 60 // 30
    with pytest.raises(ClientError) as expired:
        streams.get_records(ShardIterator=first)
    assert expired.value.response["Error"]["Code"] == "ExpiredIteratorException"


# --- emulator-request-routing -----------------------------------------------------------------------------


def test_a_request_finds_its_service_without_listing_moto_s_packages_each_time(layer, monkeypatch):
    # GIVEN moto's server application, counting the listings of moto's package directory
    from moto import backends
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.test import Client

    listings = []
    list_of_moto_modules = backends.list_of_moto_modules

    @functools.wraps(list_of_moto_modules)
    def counted() -> Any:
        listings.append(1)
        return list_of_moto_modules()

    monkeypatch.setattr(backends, "list_of_moto_modules", counted)
    client = Client(DomainDispatcherApplication(create_backend_app))

    # WHEN five DynamoDB requests and five SQS requests arrive, signed as an SDK signs them
    answers = []
    for service, target in (("dynamodb", "DynamoDB_20120810.ListTables"), ("sqs", "AmazonSQS.ListQueues")) * 5:
        response = client.post("/", data="{}", headers={
            "Authorization": f"AWS4-HMAC-SHA256 Credential=local/20261201/us-east-1/{service}/aws4_request, "
                             "SignedHeaders=host, Signature=0", "X-Amz-Target": target,
            "Content-Type": "application/x-amz-json-1.0"})
        answers.append((service, response.status_code))

    # THEN each is answered by its service; patched, moto's packages were listed once per service, not per request
    assert answers == [("dynamodb", 200), ("sqs", 200)] * 5
    assert len(listings) == (2 if layer == PATCHED else 10)


# --- the layer itself -------------------------------------------------------------------------------------


def test_the_installed_moto_is_the_one_every_patch_was_written_for():
    assert moto_patches.check() == []


def test_a_changed_moto_function_stops_the_layer_with_one_message_and_nothing_patched(monkeypatch):
    from moto.events.models import Rule
    from moto.sqs.models import Queue

    def attributes(self: Any) -> dict[str, Any]:  # what an upgraded moto might hold
        return {}

    monkeypatch.setattr(Queue, "attributes", property(attributes))
    untouched = Rule.__dict__["send_to_targets"]

    with pytest.raises(moto_patches.MotoPatchError) as refused:
        moto_patches.apply()

    message = str(refused.value)
    assert "moto.sqs.models.Queue.attributes (patch sqs-send-cost): source changed" in message
    assert "moto_patches.py" in message and moto_patches.MOTO_VERSION in message
    assert Rule.__dict__["send_to_targets"] is untouched


def test_undo_puts_moto_back_as_it_was():
    from moto.dynamodb.models.table import Table
    from moto.sqs.models import Queue

    originals = Queue.__dict__["attributes"], Table.__dict__["query"]
    moto_patches.apply()
    moto_patches.apply()  # a second emulator in the same process shares the layer
    moto_patches.release()
    assert Queue.__dict__["attributes"] is not originals[0]
    moto_patches.release()
    assert (Queue.__dict__["attributes"], Table.__dict__["query"]) == originals
