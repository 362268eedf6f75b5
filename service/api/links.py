"""OpenAPI links from a created resource to what can be done with it (clients and fuzzers such
as schemathesis follow them to reach the routes that need a real id)."""

JOB_OPERATIONS = ("get_job_v1_jobs__job_id__get", "get_job_spec_v1_jobs__job_id__spec_get",
                  "cancel_job_v1_jobs__job_id__cancel_post",
                  "get_metrics_v1_jobs__job_id__metrics_get",
                  "get_parameters_v1_jobs__job_id__parameters_get",
                  "predict_v1_jobs__job_id__predict_post",
                  "delete_job_v1_jobs__job_id__delete")
DATASET_OPERATIONS = ("get_dataset_v1_datasets__dataset_id__get",
                      "delete_dataset_v1_datasets__dataset_id__delete")


def _links(operations: tuple[str, ...], parameter: str) -> dict:
    return {operation.split("_v1_")[0]: {"operationId": operation,
                                          "parameters": {parameter: "$response.body#/id"}}
            for operation in operations}


JOB_LINKS = _links(JOB_OPERATIONS, "job_id")
DATASET_LINKS = _links(DATASET_OPERATIONS, "dataset_id")
