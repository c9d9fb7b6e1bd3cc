"""What tests share, in one place: key-shaped test data (``keys``), fakes of the engine's
ports (``fakes``), fault injection into real adapters (``faults``), moto and botocore
helpers (``aws``), error rendering (``errors``) and the environment every test starts from
(``env``). Nothing here is imported by ``bridge`` or ``providers``."""
