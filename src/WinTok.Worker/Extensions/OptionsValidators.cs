using Microsoft.Extensions.Options;
using WinTok.Worker.Messaging;
using WinTok.Worker.Resilience;
using WinTok.Worker.Results;

namespace WinTok.Worker.Extensions;

// Source-generated validators for the [Required]/[Range] attributes of each options class (no reflection at start).

[OptionsValidator]
internal sealed partial class RetryPipelineOptionsValidator : IValidateOptions<RetryPipelineOptions>;

[OptionsValidator]
internal sealed partial class ResultsDatabaseOptionsValidator : IValidateOptions<ResultsDatabaseOptions>;


[OptionsValidator]
internal sealed partial class JobQueueOptionsValidator : IValidateOptions<JobQueueOptions>;
