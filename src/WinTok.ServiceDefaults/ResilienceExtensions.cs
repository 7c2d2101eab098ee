using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;

namespace WinTok.ServiceDefaults;

public static class ResilienceExtensions
{
    /// <summary>
    /// A named retry pipeline for one dependency, injected as <c>[FromKeyedServices(dependency)] ResiliencePipeline</c>:
    /// options from <c>Resilience:{dependency}</c> (defaults <paramref name="defaults"/> or <see cref="RetryPipelineOptions"/>'s),
    /// validated at start; <paramref name="isTransient"/> says which failures it retries. Registering a name twice keeps
    /// the first, so every edge library can register its own pipeline from its <c>Add…</c> method.
    /// </summary>
    public static IHostApplicationBuilder AddRetryPipeline(this IHostApplicationBuilder builder, string dependency,
        Func<Exception, bool> isTransient, Action<RetryPipelineOptions>? defaults = null)
    {
        if (builder.Services.Any(d => d.IsKeyedService && Equals(d.ServiceKey, dependency) && d.ServiceType == typeof(ResiliencePipeline)))
        {
            return builder;
        }
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<RetryPipelineOptions>, RetryPipelineOptionsValidator>());
        var options = builder.Services.AddOptions<RetryPipelineOptions>(dependency);
        if (defaults is not null) options.Configure(defaults);
        options.BindConfiguration($"Resilience:{dependency}").ValidateOnStart();
        builder.Services.TryAddKeyedSingleton(dependency, (services, _) => ResiliencePipelineFactory.Create(
            dependency,
            services.GetRequiredService<IOptionsMonitor<RetryPipelineOptions>>().Get(dependency),
            isTransient,
            services.GetRequiredService<TimeProvider>(),
            services.GetRequiredService<ILoggerFactory>().CreateLogger($"WinTok.Resilience.{dependency}")));
        return builder;
    }
}

[OptionsValidator]
internal sealed partial class RetryPipelineOptionsValidator : IValidateOptions<RetryPipelineOptions>;
