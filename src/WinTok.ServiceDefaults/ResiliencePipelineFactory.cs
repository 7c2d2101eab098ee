using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;

namespace WinTok.ServiceDefaults;

/// <summary>Builds a dependency's pipeline: a total timeout around jittered exponential retries of transient failures.</summary>
public static class ResiliencePipelineFactory
{
    /// <summary>
    /// What a retried call is about (e.g. "job 3f2a… partition 7"), set by callers on the <see cref="ResilienceContext"/>
    /// so the retry log line names it.
    /// </summary>
    public static ResiliencePropertyKey<string> Operation { get; } = new("wintok.operation");

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
                    var operation = args.Context.Properties.GetValue(Operation, "a call");
                    Log.Retrying(logger, args.Outcome.Exception, dependency, operation, args.AttemptNumber + 1, (long)args.RetryDelay.TotalMilliseconds);
                    return default;
                },
            })
            .Build();
    }
}
