"""What the object-storage tests do to a bucket, as an independent S3 client
(boto3) and independent Parquet readers (pyarrow, Polars) would.

Usage: s3_tool.py COMMAND BUCKET PREFIX [ARG]; the endpoint and credentials come
from the standard AWS_* environment variables.

  poll BUCKET PREFIX STOPFILE   read every .parquet object as soon as it is listed,
                                until STOPFILE exists; print {"read": n, "errors": [...]}
  mirror BUCKET PREFIX DIR      download every object below PREFIX into DIR
  keys BUCKET PREFIX            print every key below PREFIX, one per line
  uploads BUCKET                print the incomplete multipart uploads as JSON
  put BUCKET KEY                write a few bytes that are not Parquet to KEY
  read BUCKET PREFIX            read history/ and devices/ with pyarrow and Polars;
                                print rows and schema of each as JSON
"""

import io
import json
import os
import sys
import time

import boto3


def client():
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def objects(s3, bucket, prefix):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    for page in pages:
        for item in page.get("Contents", []):
            yield item["Key"], item["Size"]


def poll(bucket, prefix, stopfile):
    import pyarrow.parquet as pq

    s3 = client()
    seen, errors = set(), []
    while True:
        stopping = os.path.exists(stopfile)
        for key, size in list(objects(s3, bucket, prefix)):
            if not key.endswith(".parquet") or (key, size) in seen:
                continue
            seen.add((key, size))
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                pq.read_table(io.BytesIO(body))
            except s3.exceptions.NoSuchKey:
                pass  # replaced or deleted since it was listed
            except Exception as error:  # a listed object that is not whole Parquet
                errors.append(f"{key} ({size} bytes): {error}")
        if stopping:
            break
        time.sleep(0.1)
    print(json.dumps({"read": len(seen), "errors": errors}))


def mirror(bucket, prefix, target):
    s3 = client()
    for key, _ in objects(s3, bucket, prefix):
        path = os.path.join(target, key[len(prefix) + 1 :])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        s3.download_file(bucket, key, path)


def read(bucket, prefix):
    import polars as pl
    import pyarrow.dataset as ds
    import pyarrow.fs as pafs

    endpoint = os.environ["AWS_ENDPOINT_URL"]
    filesystem = pafs.S3FileSystem(
        endpoint_override=endpoint.split("://", 1)[1],
        scheme="http",
        access_key=os.environ["AWS_ACCESS_KEY_ID"],
        secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
        region=os.environ["AWS_REGION"],
    )
    options = {
        "aws_endpoint_url": endpoint,
        "aws_access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
        "aws_region": os.environ["AWS_REGION"],
        "aws_allow_http": "true",
    }
    out = {}
    for name in ("history", "devices"):
        dataset = ds.dataset(
            f"{bucket}/{prefix}/{name}", format="parquet", partitioning="hive", filesystem=filesystem
        )
        frame = pl.scan_parquet(
            f"s3://{bucket}/{prefix}/{name}/**/*.parquet",
            hive_partitioning=True,
            storage_options=options,
        ).collect()
        out[name] = {
            "pyarrow_rows": dataset.count_rows(),
            "pyarrow_schema": [f"{field.name}: {field.type}" for field in dataset.schema],
            "polars_rows": frame.height,
            "polars_columns": frame.columns,
        }
    print(json.dumps(out))


def main():
    command, bucket = sys.argv[1], sys.argv[2]
    s3 = client()
    if command == "poll":
        poll(bucket, sys.argv[3], sys.argv[4])
    elif command == "mirror":
        mirror(bucket, sys.argv[3], sys.argv[4])
    elif command == "keys":
        for key, _ in objects(s3, bucket, sys.argv[3]):
            print(key)
    elif command == "uploads":
        listed = s3.list_multipart_uploads(Bucket=bucket)
        print(json.dumps([upload["Key"] for upload in listed.get("Uploads", [])]))
    elif command == "put":
        s3.put_object(Bucket=bucket, Key=sys.argv[3], Body=b"PAR1 partial")
    elif command == "read":
        read(bucket, sys.argv[3])
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
