using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using WinTok.Worker.Resilience;

namespace WinTok.Worker.Extensions;

internal static class ResilienceExtensions
{
    /// <summary>
    /// The three keyed pipelines (<see cref="ResiliencePipelineKeys"/>), each configured from <c>Resilience:{key}</c>
    /// and validated at start. Called by the other <c>Add…</c> methods; safe to call more than once.
    /// </summary>
    public static IHostApplicationBuilder AddWinTokResilience(this IHostApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RetryPipelineOptions>, RetryPipelineOptionsValidator>());
        AddPipeline(builder, ResiliencePipelineKeys.Blob, TransientFailures.IsTransientBlob);
        AddPipeline(builder, ResiliencePipelineKeys.Database, TransientFailures.IsTransientDatabase);
        AddPipeline(builder, ResiliencePipelineKeys.Broker, TransientFailures.IsTransientBroker);
        return builder;
    }

    private static void AddPipeline(IHostApplicationBuilder builder, string key, Func<Exception, bool> isTransient)
    {
        if (builder.Services.Any(d => d.IsKeyedService && Equals(d.ServiceKey, key) && d.ServiceType == typeof(ResiliencePipeline)))
        {
            return;
        }
        builder.Services.AddOptions<RetryPipelineOptions>(key).BindConfiguration($"Resilience:{key}").ValidateOnStart();
        builder.Services.TryAddKeyedSingleton(key, (services, _) => ResiliencePipelineFactory.Create(
            key,
            services.GetRequiredService<IOptionsMonitor<RetryPipelineOptions>>().Get(key),
            isTransient,
            services.GetRequiredService<TimeProvider>(),
            services.GetRequiredService<ILoggerFactory>().CreateLogger($"WinTok.Worker.Resilience.{key}")));
    }
}
