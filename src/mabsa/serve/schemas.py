"""Request and response schemas (they also make the OpenAPI document at ``/openapi.json``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PredictRequest(BaseModel):
    """JSON form of ``POST /v1/predict`` (the multipart form has the same fields, with
    ``image`` as a file instead of ``image_base64``)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(..., description="The post text.", examples=["Chuck Bass is everything # MCM"])
    image_base64: str | None = Field(None, description="The post image, base64 (a data: URL is accepted).")
    model: str | None = Field(None, description="Served model name (GET /v1/models); default: the first.")
    aspects: list[str] | None = Field(None, description="masc models only: the aspect terms to classify.")
    evidence: bool = Field(True, description="Compute image evidence (faces, regions, caption, alignment).")


class BatchItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    image_base64: str | None = None
    aspects: list[str] | None = None


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[BatchItem] = Field(..., description="Posts; at most the server's max_batch_items.")
    model: str | None = None
    evidence: bool = False


class Aligned(BaseModel):
    kind: Literal["face", "region", "background"]
    index: int = Field(..., description="Index into image.faces or image.regions.")
    box: list[int] = Field(..., description="x, y, width, height in image pixels.")
    description: str
    similarity: float = Field(..., description="Cosine similarity of the aspect term and the description.")


class Rationale(BaseModel):
    description: str | None = None
    reason: str | None = None
    source: str | None = None


class AspectOut(BaseModel):
    start: int = Field(..., description="First token of the aspect.")
    end: int = Field(..., description="One past its last token.")
    term: str
    polarity: Literal["POS", "NEU", "NEG"] | None
    score: float | None = Field(None, description="The model's confidence in [0, 1].")
    char_start: int | None = Field(None, description="Character offset of the aspect in text.")
    char_end: int | None = None
    aligned: Aligned | None = None
    rationale: Rationale | None = None


class FaceOut(BaseModel):
    box: list[int] | None
    age: float | None = None
    gender: str | None = None
    emotion: str | None = None
    confidence: float | None = None
    description: str


class RegionOut(BaseModel):
    box: list[int]
    score: float
    is_background: bool
    interpretation: str | None = None


class LabelOut(BaseModel):
    label: str
    probability: float


class ImageOut(BaseModel):
    name: str
    width: int | None
    height: int | None
    #: False when the image gave no confident evidence: no face, and no label or region named
    #: above the label floor (the page says so)
    confident: bool = True
    caption: str | None = None
    caption_source: str | None = None
    labels: list[LabelOut] = []
    face_description: str | None = None
    faces: list[FaceOut] = []
    regions: list[RegionOut] = []


class PredictResponse(BaseModel):
    model: str
    task: str
    text: str
    tokens: list[str]
    aspects: list[AspectOut]
    truncated: bool = Field(..., description="The post was longer than the model's max_length.")
    image: ImageOut | None = Field(None, description="Image evidence (null without image or evidence).")
    image_used: bool = Field(
        False,
        description="The model itself read the image (its caption and "
        "faces, or its pixels); otherwise the image is evidence only.",
    )
    evidence_error: str | None = Field(None, description="Why image evidence is missing, if it failed.")
    timing_ms: dict[str, float]


class BatchResponse(BaseModel):
    results: list[PredictResponse]


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
