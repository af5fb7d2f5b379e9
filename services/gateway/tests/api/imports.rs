use std::time::Duration;

use futures::StreamExt;
use muster_proto::contacts::v1::ImportPreset;
use tokio::io::AsyncWriteExt;

use crate::fakes::Upload;
use crate::helpers::{gateway_with_contacts, json_error};

#[tokio::test]
async fn a_200_mb_upload_is_streamed_to_contacts_with_its_header_and_organization() {
    let (gateway, mut uploads) = gateway_with_contacts().await;
    let (tenant, key) = gateway.tenant().await;
    const CHUNK: usize = 1 << 20;
    const CHUNKS: usize = 200;
    let chunk = |_| Ok::<_, std::io::Error>(vec![b'x'; CHUNK]);
    let body = futures::stream::iter(0..CHUNKS).map(chunk);

    let response = gateway
        .post("/v1/imports?preset=custom&file_name=big.csv&source_label=fête&map.email=E-mail")
        .bearer_auth(&key)
        .header("Content-Length", (CHUNK * CHUNKS).to_string())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status().as_u16(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let job: serde_json::Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/imports/{}", job["id"].as_str().unwrap())
    );
    assert_eq!(job["state"], "queued");
    assert_eq!(job["preset"], "custom");
    assert_eq!(job["size_bytes"], (CHUNK * CHUNKS) as u64);

    assert!(matches!(uploads.recv().await, Some(Upload::Started)));
    let Some(Upload::Complete {
        tenant: seen,
        header,
        bytes,
    }) = uploads.recv().await
    else {
        panic!("the upload did not complete");
    };
    assert_eq!(seen, Some(tenant));
    assert_eq!(bytes, (CHUNK * CHUNKS) as u64);
    assert_eq!(header.size_bytes, (CHUNK * CHUNKS) as u64);
    assert_eq!(header.preset, ImportPreset::Custom as i32);
    assert_eq!(header.file_name, "big.csv");
    assert_eq!(header.source_label, "fête");
    assert_eq!(header.mapping.unwrap().email, "E-mail");
}

#[tokio::test]
async fn an_interrupted_upload_never_reaches_contacts_as_a_complete_file() {
    let (gateway, mut uploads) = gateway_with_contacts().await;
    let (_, key) = gateway.tenant().await;
    let address = gateway.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/imports?preset=fr_excel HTTP/1.1\r\nHost: {address}\r\n\
         Authorization: Bearer {key}\r\nContent-Length: 1000000\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(&[b'x'; 4096]).await.unwrap();
    let started = tokio::time::timeout(Duration::from_secs(5), uploads.recv())
        .await
        .unwrap();
    assert!(matches!(started, Some(Upload::Started)));

    drop(socket);

    // The gateway resets the gRPC stream; a tonic server reads that reset as
    // the end of the stream, so what tells contacts the file was cut short is
    // the declared size.
    let outcome = tokio::time::timeout(Duration::from_secs(5), uploads.recv())
        .await
        .unwrap();
    match outcome {
        Some(Upload::Broken { bytes }) => assert!(bytes < 1_000_000),
        Some(Upload::Complete { header, bytes, .. }) => {
            assert_eq!(header.size_bytes, 1_000_000);
            assert!(bytes < header.size_bytes, "{bytes} bytes");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn an_upload_without_a_declared_length_is_refused() {
    let (gateway, mut uploads) = gateway_with_contacts().await;
    let (_, key) = gateway.tenant().await;
    let chunks = futures::stream::iter([Ok::<_, std::io::Error>(b"Email\na@b.fr\n".to_vec())]);

    let response = gateway
        .post("/v1/imports?preset=fr_excel")
        .bearer_auth(&key)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();

    let (status, _, message) = json_error(response).await;
    assert_eq!(status, 400);
    assert!(message.contains("Content-Length"), "{message}");
    assert!(uploads.try_recv().is_err(), "nothing reached contacts");
}
