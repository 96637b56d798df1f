"""Documents through boto3 and the aws CLI: create, read, version, list, delete."""

import json

import pytest
from botocore.exceptions import ClientError

from conftest import YAML_DOCUMENT, command_document


def error_code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def test_builtin_documents_are_always_there(server):
    ssm = server.client()

    document = ssm.get_document(Name="AWS-RunShellScript")
    description = ssm.describe_document(Name="AWS-RunShellScript")["Document"]

    content = json.loads(document["Content"])
    assert content["schemaVersion"] == "1.2"
    assert document["DocumentVersion"] == "1"
    assert description["Owner"] == "Amazon"
    assert description["PlatformTypes"] == ["Linux", "MacOS"]
    names = {p["Name"] for p in description["Parameters"]}
    assert names == {"commands", "workingDirectory", "executionTimeout"}


def test_builtin_documents_cannot_be_changed(server):
    ssm = server.client()

    with pytest.raises(ClientError) as excinfo:
        ssm.delete_document(Name="AWS-RunShellScript")

    assert error_code(excinfo) == "InvalidDocumentOperation"


def test_create_update_and_version_a_document(server):
    ssm = server.client()

    created = ssm.create_document(Name="Hello-Doc", Content=command_document(), DocumentType="Command")
    updated = ssm.update_document(
        Name="Hello-Doc", Content=command_document("echo again"), DocumentVersion="$LATEST"
    )
    ssm.update_document_default_version(Name="Hello-Doc", DocumentVersion="2")
    versions = ssm.list_document_versions(Name="Hello-Doc")["DocumentVersions"]
    first = ssm.get_document(Name="Hello-Doc", DocumentVersion="1")

    assert created["DocumentDescription"]["DocumentVersion"] == "1"
    assert created["DocumentDescription"]["HashType"] == "Sha256"
    assert updated["DocumentDescription"]["LatestVersion"] == "2"
    assert [v["DocumentVersion"] for v in versions] == ["2", "1"]
    assert [v["IsDefaultVersion"] for v in versions] == [True, False]
    assert "echo hello" in first["Content"]


def test_duplicate_name_and_content_are_refused(server):
    ssm = server.client()
    ssm.create_document(Name="Dup-Doc", Content=command_document())

    with pytest.raises(ClientError) as same_name:
        ssm.create_document(Name="Dup-Doc", Content=command_document())
    with pytest.raises(ClientError) as same_content:
        ssm.update_document(Name="Dup-Doc", Content=command_document(), DocumentVersion="$LATEST")

    assert error_code(same_name) == "DocumentAlreadyExists"
    assert error_code(same_content) == "DuplicateDocumentContent"


def test_invalid_content_names_the_problem(server):
    ssm = server.client()

    with pytest.raises(ClientError) as not_json:
        ssm.create_document(Name="Broken-Doc", Content="{not json")
    with pytest.raises(ClientError) as bad_schema:
        ssm.create_document(Name="Broken-Doc", Content=json.dumps({"schemaVersion": "9.9"}))

    assert error_code(not_json) == "InvalidDocumentContent"
    assert error_code(bad_schema) == "InvalidDocumentSchemaVersion"


def test_yaml_documents_and_format_conversion(server):
    ssm = server.client()
    ssm.create_document(Name="Yaml-Doc", Content=YAML_DOCUMENT, DocumentFormat="YAML")

    as_yaml = ssm.get_document(Name="Yaml-Doc")
    as_json = ssm.get_document(Name="Yaml-Doc", DocumentFormat="JSON")

    assert as_yaml["DocumentFormat"] == "YAML"
    assert as_yaml["Content"] == YAML_DOCUMENT
    assert json.loads(as_json["Content"])["mainSteps"][0]["name"] == "run"


def test_unknown_document_and_version(server):
    ssm = server.client()

    with pytest.raises(ClientError) as unknown:
        ssm.get_document(Name="No-Such-Doc")
    with pytest.raises(ClientError) as bad_version:
        ssm.get_document(Name="AWS-RunShellScript", DocumentVersion="7")

    assert error_code(unknown) == "InvalidDocument"
    assert error_code(bad_version) == "InvalidDocumentVersion"


def test_list_documents_filters_and_paginates(server):
    ssm = server.client()
    for n in range(3):
        ssm.create_document(Name=f"Page-Doc-{n}", Content=command_document(f"echo {n}"))

    mine = ssm.list_documents(Filters=[{"Key": "Owner", "Values": ["Self"]}])["DocumentIdentifiers"]
    paginator = ssm.get_paginator("list_documents")
    pages = list(paginator.paginate(Filters=[{"Key": "Name", "Values": ["Page-Doc"]}],
                                    PaginationConfig={"PageSize": 2}))

    assert all(d["Owner"] != "Amazon" for d in mine)
    names = [d["Name"] for page in pages for d in page["DocumentIdentifiers"]]
    assert names == ["Page-Doc-0", "Page-Doc-1", "Page-Doc-2"]
    assert len(pages) == 2


def test_delete_document(server):
    ssm = server.client()
    ssm.create_document(Name="Gone-Doc", Content=command_document())

    ssm.delete_document(Name="Gone-Doc")

    with pytest.raises(ClientError) as excinfo:
        ssm.describe_document(Name="Gone-Doc")
    assert error_code(excinfo) == "InvalidDocument"


def test_aws_cli_reads_documents(server):
    result = server.aws("ssm", "describe-document", "--name", "AWS-RunPowerShellScript")

    document = json.loads(result.stdout)["Document"]
    assert document["Name"] == "AWS-RunPowerShellScript"


def test_read_only_user_cannot_create(server):
    ssm = server.client("reader")
    ssm.list_documents()

    with pytest.raises(ClientError) as excinfo:
        ssm.create_document(Name="Reader-Doc", Content=command_document())

    assert error_code(excinfo) == "AccessDeniedException"
    message = excinfo.value.response["Error"]["Message"]
    assert message == (
        "User: arn:aws:iam::123456789012:user/reader is not authorized to perform: "
        "ssm:CreateDocument on resource: arn:aws:ssm:us-east-1:123456789012:document/Reader-Doc "
        "because no identity-based policy allows the ssm:CreateDocument action"
    )
