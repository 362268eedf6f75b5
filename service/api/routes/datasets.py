"""Upload, list, inspect and delete datasets (jobs refer to them as {"type": "dataset", "id"})."""
import json

import numpy as np
from fastapi import APIRouter, HTTPException, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from ..csv_rows import arrays_from_csv
from ..deps import CurrentPrincipal, SettingsDep, StoreDep
from ..errors import validation_error
from ..examples import DATASET_JSON_EXAMPLE
from ..schemas import DatasetCreate, DatasetOut
from ..uploads import BadUpload, PreparedDataset, arrays_from_npz, prepare_dataset

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary",
                                "description": ".npz with x (N, F) or (N, C, H, W) and "
                                "integer y (N,), or "
                                "a .csv with a header row (numeric features, integer labels)"},
                       "name": {"type": "string", "maxLength": 200},
                       "label_column": {"type": "string", "maxLength": 200, "default": "label",
                                        "description": "CSV only: the column holding labels"}}}},
    "application/json": {"schema": DatasetCreate.model_json_schema(),
                         "example": DATASET_JSON_EXAMPLE},
}}}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetOut,
             summary="Upload a dataset", openapi_extra=UPLOAD_BODY,
             responses={413: {"description": "Upload too large, or the key's dataset storage "
                              "quota would be exceeded"},
                        415: {"description": "Neither multipart/form-data nor JSON"},
                        422: {"description": "Malformed dataset"}})
async def create_dataset(request: Request, response: Response, store: StoreDep,
                         principal: CurrentPrincipal) -> DatasetOut:
    """Multipart with an .npz or .csv `file` (optional `name`; for CSV, `label_column`,
    default "label"), or JSON {"name", "x", "y"}; it belongs to the caller's tenant. A
    malformed CSV is a 422 naming the line and column. The stored size counts against the
    key's storage quota."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        name, prepared = await _from_multipart(request)
    elif content_type.startswith("application/json"):
        name, prepared = await _from_json(request)
    else:
        raise HTTPException(415, "send multipart/form-data with an .npz or .csv file, or JSON")
    dataset = await run_in_threadpool(
        store.create_dataset, name=name, blob=prepared.blob, n_rows=prepared.n_rows,
        n_features=prepared.n_features, n_classes=prepared.n_classes, tenant=principal.tenant,
        owner=principal.key_name, max_bytes=principal.limit("max_dataset_bytes"))
    response.headers["Location"] = f"/v1/datasets/{dataset.id}"
    return DatasetOut.from_dataset(dataset)


@router.get("", response_model=list[DatasetOut], summary="List datasets, newest first")
def list_datasets(store: StoreDep, principal: CurrentPrincipal) -> list[DatasetOut]:
    """The caller's tenant's datasets (every tenant's for admin keys)."""
    return [DatasetOut.from_dataset(d) for d in store.list_datasets(tenant=principal.tenant_filter)]


@router.get("/{dataset_id}", response_model=DatasetOut, summary="Get a dataset's metadata",
            responses={404: {"description": "Unknown dataset"}})
def get_dataset(dataset_id: str, store: StoreDep, principal: CurrentPrincipal) -> DatasetOut:
    """Rows, features, classes and size."""
    return DatasetOut.from_dataset(store.get_dataset(dataset_id, tenant=principal.tenant_filter))


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT, response_class=Response,
               summary="Delete a dataset", responses={404: {"description": "Unknown dataset"}})
def delete_dataset(dataset_id: str, store: StoreDep, principal: CurrentPrincipal) -> Response:
    """Remove it; jobs still queued on it fail with a clear message."""
    store.delete_dataset(dataset_id, tenant=principal.tenant_filter)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


async def _from_multipart(request: Request) -> tuple[str | None, PreparedDataset]:
    async with request.form(max_files=1, max_fields=10) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise validation_error([(("body", "file"), "a multipart field `file` holding an "
                                     ".npz archive or a .csv file is required", None)])
        data = await upload.read()
        name = form.get("name") or upload.filename
        label_column = str(form.get("label_column") or "label")[:200]
        is_csv = (upload.filename or "").lower().endswith(".csv") or \
            (upload.content_type or "").startswith("text/csv")
    name = str(name)[:200] if name else None
    if is_csv:
        return name, await _prepare(("body", "file"), data=data, label_column=label_column)
    return name, await _prepare(("body", "file"), data=data)


async def _from_json(request: Request) -> tuple[str | None, PreparedDataset]:
    try:
        payload = DatasetCreate.model_validate(json.loads(await request.body()))
    except ValidationError as exc:
        raise validation_error([(("body", *e["loc"]), e["msg"], None) for e in exc.errors()]) \
            from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise validation_error([(("body",), f"invalid JSON: {exc}", None)]) from None
    x = np.asarray(payload.x, dtype=np.float64)  # (N, F) or (N, C, H, W)
    labels = all(isinstance(v, int) for v in payload.y)
    y = np.asarray(payload.y, dtype=np.int64 if labels else np.float64)  # (N,) or (N, K)
    return payload.name, await _prepare(("body",), x=x, y=y)


async def _prepare(loc: tuple, *, data: bytes | None = None, x=None, y=None,
                   label_column: str | None = None) -> PreparedDataset:
    """Parse and check off the event loop; a bad upload is a 422 at `loc`. With a
    `label_column`, `data` is CSV, else .npz."""
    def work() -> PreparedDataset:
        if data is None:
            arrays = (x, y)
        elif label_column is not None:
            arrays = arrays_from_csv(data, label_column)
        else:
            arrays = arrays_from_npz(data)
        return prepare_dataset(*arrays)
    try:
        return await run_in_threadpool(work)
    except BadUpload as exc:
        raise validation_error([(loc, str(exc), None)]) from None
