"""What test_serving.py's unit and integration tests share."""

from bertdata.tokenizer import SPECIAL_IDS

CLS, SEP = SPECIAL_IDS.cls, SPECIAL_IDS.sep
