"""Bounds on everything a peer can send. Each is enforced before any work is done."""

PROTOCOL_VERSION = 2                 # what each version holds: versions.py
SUPPORTED_VERSIONS = (1, 2)

MAX_FRAME_BYTES = 64 * 1024          # one frame, after transport framing
# Every frame the server sends stays within this. SDKs refuse a message of 256 KiB or more
# (aiohttp's max_msg_size, 4 x MAX_FRAME_BYTES, counts a message of exactly that size as too
# big), so the server keeps 1 KiB below it; results that grow with stored text are paged by
# bytes as well as by count to fit (issue 7, finding 3).
MAX_SERVER_FRAME_BYTES = 4 * MAX_FRAME_BYTES - 1024
MAX_TEXT_CHARS = 4096                # message text, in code points (as Telegram)
# an end-to-end encrypted message's opaque body: a Megolm message of the longest text (4,096
# four-byte characters) with its headers and signature, and room to spare
MAX_MESSAGE_CIPHERTEXT_BYTES = 20 * 1024
MAX_NAME_CHARS = 64                  # display names and device names
MAX_TITLE_CHARS = 128                # group titles
MAX_PHONE_CHARS = 32                 # raw input before E.164 normalisation
MAX_TOKEN_CHARS = 64
MAX_CODE_CHARS = 16
MAX_IDS_PER_CALL = 100               # user ids, message ids in one call
MAX_HISTORY_PAGE = 100
MAX_DIFFERENCE_PAGE = 1000
MAX_GROUP_MEMBERS = 200_000         # the protocol's ceiling; servers set a lower one
MAX_DIALOG_PAGE = 100                # dialogs in one chats.list page
MAX_OFFSET = MAX_GROUP_MEMBERS       # a paging offset (chats.members)
MAX_DATE = 2.0**40                   # a date given as a cursor, in seconds (year 36812)
USERNAME_MIN, USERNAME_MAX = 5, 32
MAX_REASON_CHARS = 200               # an abuse report's reason
MAX_SAFETY_PAGE = 100                # contacts, blocked users, message requests in one page
#: the longest wait a server may ask of a client (retry_after, retry_spread): an hour
MAX_RETRY_SECONDS = 3600.0
MAX_REQUEST_ID = 2**53               # fits a JavaScript number, should a web client come
