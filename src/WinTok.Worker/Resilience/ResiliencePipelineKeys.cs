namespace WinTok.Worker.Resilience;

/// <summary>Service keys of the three pipelines (<c>[FromKeyedServices(ResiliencePipelineKeys.Blob)]</c>) and their option names.</summary>
internal static class ResiliencePipelineKeys
{
    public const string Blob = "Blob";
    public const string Database = "Database";
    public const string Broker = "Broker";
}
