//! The S3 test harness against the local S3 server: a bucket, an object put through the harness,
//! listed and read back through `object_store`, then deleted.

use autoloader_tests::s3;
use object_store::path::Path;
use object_store::ObjectStore;
use object_store::ObjectStoreExt;
use uuid::Uuid;

#[tokio::test]
async fn put_list_get_delete() {
    let bucket = format!("harness-{}", Uuid::now_v7().simple());
    s3::create_bucket(&bucket).await;
    // Creating it again is harmless.
    s3::create_bucket(&bucket).await;

    let body = b"id,name\n1,alpha\n2,beta\n".to_vec();
    s3::put_object(&bucket, "in/2024/01/data.csv", body.clone()).await;
    s3::put_object(&bucket, "other/skip.csv", b"x".to_vec()).await;

    let store = s3::store(&bucket);
    let listed = store
        .list_with_delimiter(Some(&Path::from("in/2024/01")))
        .await
        .expect("list");
    let keys: Vec<(String, u64)> = listed
        .objects
        .iter()
        .map(|m| (m.location.to_string(), m.size))
        .collect();
    assert_eq!(
        keys,
        vec![("in/2024/01/data.csv".to_owned(), body.len() as u64)]
    );

    let got = store
        .get(&Path::from("in/2024/01/data.csv"))
        .await
        .expect("get")
        .bytes()
        .await
        .expect("read body");
    assert_eq!(got.as_ref(), body.as_slice());

    s3::delete_object(&bucket, "in/2024/01/data.csv").await;
    let after = store
        .list_with_delimiter(Some(&Path::from("in")))
        .await
        .expect("list after delete");
    assert!(
        after.objects.is_empty() && after.common_prefixes.is_empty(),
        "{after:?}"
    );
}
