using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace WinTok.Worker.Resilience;

/// <summary>Builds a dependency's pipeline: a total timeout around jittered exponential retries of transient failures.</summary>
internal static class ResiliencePipelineFactory
{
    public static ResiliencePipeline Create(
        string dependency, RetryPipelineOptions options, Func<Exception, bool> isTransient, TimeProvider timeProvider, ILogger logger)
    {
        return new ResiliencePipelineBuilder { Name = dependency, TimeProvider = timeProvider }
            .AddTimeout(options.TotalTimeout)
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<Exception>(isTransient),
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = options.BaseDelay,
                MaxDelay = options.MaxDelay,
                MaxRetryAttempts = options.MaxRetryAttempts,
                OnRetry = args =>
                {
                    var attempt = args.AttemptNumber + 1;
                    var delayMs = (long)args.RetryDelay.TotalMilliseconds;
                    switch (dependency)
                    {
                        case ResiliencePipelineKeys.Blob: Log.RetryingBlobCall(logger, args.Outcome.Exception, attempt, delayMs); break;
                        case ResiliencePipelineKeys.Database: Log.RetryingDatabaseCall(logger, args.Outcome.Exception, attempt, delayMs); break;
                        default: Log.RetryingBrokerCall(logger, args.Outcome.Exception, attempt, delayMs); break;
                    }
                    return default;
                },
            })
            .Build();
    }
}
