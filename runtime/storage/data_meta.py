"""The SQLAlchemy metadata of the data stores' tables (tables, buckets, S3 metadata, change
capture), apart so that each store module can add its tables without importing another
(storage layer)."""

from __future__ import annotations

import sqlalchemy as sa

data_metadata = sa.MetaData()
